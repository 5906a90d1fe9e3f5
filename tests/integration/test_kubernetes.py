"""drdrill on Kubernetes, on drdrill's own single-node cluster (`drdrill cluster up`), brought
up once for this module: the platform deployed from deploy/k8s, filled the platform's way, its
nightly CronJob run now; the restore test of the CronJob's own backups; faults of the CronJob;
the full-site drill through Kubernetes (site loss, apply, rollout, restore, verify, traffic
switch); destruction refused in an unlabelled namespace; and `cluster down` leaving nothing.

The cases share the cluster and run in file order; the last one takes it down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drdrill.adapters.kubernetes import DRILL_NAMESPACE_LABEL, KubeCluster
from drdrill.provision.kubernetes import kubernetes_bin
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import load_paths
from drdrill.targets.kubernetes.node import ClusterHost

from .k8s_processes import cluster_processes

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.kubernetes]

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "platform" / "platform_job.sh"
TENANTS = {"org1/ns1": (2, 40), "org1/ns2": (1, 30), "org2/ns1": (1, 20)}
ES_PODS = ["elasticsearch-0", "elasticsearch-1", "elasticsearch-2"]


def drdrill(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass
class Cluster:
    kubeconfig: Path
    namespace: str
    config: Path
    kube: KubeCluster

    def kubectl(self, *args: str) -> str:
        kubectl = kubernetes_bin(load_paths().cache_dir) / "kubectl"
        done = subprocess.run([str(kubectl), f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, (args, done.stderr[-1000:])
        return done.stdout

    def run(self, tmp_path: Path, *args: str, config: Path | None = None
            ) -> tuple[subprocess.CompletedProcess[str], dict | None]:
        report_dir = tmp_path / f"report-{uuid.uuid4().hex[:6]}"
        result = drdrill("run", *args, "--target", "live", "--config", str(config or self.config), "--report-dir",
                         str(report_dir), "--project-dir", str(tmp_path))
        path = report_dir / "report.json"
        return result, json.loads(path.read_text()) if path.exists() else None

    def pod_uid(self, name: str) -> str:
        return str(self.kube.core().read_namespaced_pod(name, self.namespace).metadata.uid)


def _fill_the_platform_way(cluster: Cluster) -> None:
    """Tenants as the platform makes them (psql + curl), through port-forwards to its pods."""
    secret = cluster.kube.read_secret(cluster.namespace, "es-platform")
    with cluster.kube.port_forward(cluster.namespace, "statefulset/elasticsearch", 9200, "es") as es, \
            cluster.kube.port_forward(cluster.namespace, "app=postgres", 5432, "pg") as pg:
        env = dict(os.environ, ES_URL=f"http://127.0.0.1:{es}", PGHOST="127.0.0.1", PGPORT=str(pg),
                   PGUSER=secret["DB_USER"], PGPASSWORD=secret["DB_PASSWORD"], PGDATABASE="es_metadata",
                   PATH=f"{find_pg_bindir()}:{os.environ['PATH']}")
        for args in (["schema"], *(["tenant", t, str(i), str(d)] for t, (i, d) in TENANTS.items())):
            done = subprocess.run(["bash", str(JOB), *args], env=env, capture_output=True, text=True, timeout=300,
                                  check=False)
            assert done.returncode == 0, (args, done.stderr[-1000:])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    up = drdrill("cluster", "up", "--json", timeout=3600)
    assert up.returncode == 0, up.stderr[-2000:]
    summary = json.loads(up.stdout)
    kube = KubeCluster(Path(summary["kubeconfig"]))
    found = Cluster(Path(summary["kubeconfig"]), summary["namespace"], Path(summary["config"]), kube)
    try:
        _fill_the_platform_way(found)
        yield found
    finally:
        kube.close()
        drdrill("cluster", "down", timeout=600)


def test_cluster_status_shows_a_ready_node_and_the_platform(cluster):
    result = drdrill("cluster", "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["up"] and status["version"] == "v1.34.4"
    assert [n["ready"] for n in status["nodes"]] == [True]
    assert set(status["processes"].values()) == {"running"}
    # Elasticsearch as the platform runs it: a cluster of three pods, all joined (each is ready
    # only once the cluster it joined has a master).
    assert {name: detail.split(",")[0] for name, detail in status["statefulsets"].items()} == {
        "minio": "1/1 ready", "postgres": "1/1 ready", "elasticsearch": "3/3 ready"}
    labels = cluster.kube.namespace_labels(cluster.namespace)
    assert labels.get(DRILL_NAMESPACE_LABEL) == "true"


def test_the_cronjobs_own_backup_passes_the_restore_test(cluster, tmp_path):
    backup = drdrill("target", "backup-now", "--config", str(cluster.config), "--json")
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert json.loads(backup.stdout)["outcome"] == "succeeded"
    result, report = cluster.run(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "passed"
    target = report["evidence"]["notes"]["target"]
    assert target["cluster"]["version"] == "v1.34.4" and target["cluster"]["drill_environment_label"]
    assert "docker.io/drdrill/toolbox:1" in target["cluster"]["images"]["cronjob/es-backup"]
    runs = target["backup_cronjob"]["runs"]
    assert runs and runs[-1]["outcome"] == "succeeded"
    snapshots = report["evidence"]["snapshots"]
    assert {f"{s['org_id']}/{s['namespace']}" for s in snapshots} == set(TENANTS)
    assert all(s["name"].startswith("nightly-") for s in snapshots)  # the CronJob's, not drdrill's


def test_a_suspended_backup_cronjob_fails_the_restore_test(cluster, tmp_path):
    cluster.kubectl("patch", "cronjob", "es-backup", "-p", '{"spec": {"suspend": true}}')
    try:
        result, report = cluster.run(tmp_path)
    finally:
        cluster.kubectl("patch", "cronjob", "es-backup", "-p", '{"spec": {"suspend": false}}')
    assert result.returncode == 1, result.stdout[-2000:]
    failed = [p for p in report["problems"] if p["kind"] == "failed"]
    assert failed and failed[0]["phase"] == "backup-job" and "is suspended" in failed[0]["summary"]


def test_a_failed_backup_run_fails_the_restore_test_in_the_jobs_own_words(cluster, tmp_path):
    """The job's repository path is one Elasticsearch does not accept (a misconfiguration):
    the Job fails, and the restore test says so with the job's own last log line."""
    env = "/spec/jobTemplate/spec/template/spec/containers/0/env/1"
    cluster.kubectl("patch", "cronjob", "es-backup", "--type=json", "-p", json.dumps([
        {"op": "test", "path": f"{env}/name", "value": "REPO_DIR"},
        {"op": "replace", "path": f"{env}/value", "value": "/tmp/not-path-repo"}]))
    try:
        backup = drdrill("target", "backup-now", "--config", str(cluster.config), "--json")
        assert backup.returncode == 1, backup.stdout + backup.stderr
        result, report = cluster.run(tmp_path)
    finally:  # the platform's manifests put the job right again
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=drdrill", "-k",
                        str(cluster.config.parent / "platform"))
    assert result.returncode == 1, result.stdout[-2000:]
    failed = [p for p in report["problems"] if p["kind"] == "failed" and p["phase"] == "backup-job"]
    assert failed and "newest backup Job" in failed[0]["summary"], report["problems"]
    assert "elasticsearch: PUT /_snapshot/" in failed[0]["summary"], failed[0]
    again = drdrill("target", "backup-now", "--config", str(cluster.config), "--json")
    assert again.returncode == 0, again.stdout  # the platform's job is whole again


def test_destruction_is_refused_in_a_namespace_not_labelled_for_drills(cluster, tmp_path):
    before = cluster.pod_uid("elasticsearch-0")
    cluster.kubectl("label", "namespace", cluster.namespace, f"{DRILL_NAMESPACE_LABEL}-")
    try:
        result, report = cluster.run(tmp_path, str(ROOT / "features" / "full_site_recovery.feature"))
    finally:
        cluster.kubectl("label", "namespace", cluster.namespace, f"{DRILL_NAMESPACE_LABEL}=true")
    assert result.returncode == 2 and report is None, result.stderr
    assert DRILL_NAMESPACE_LABEL in result.stderr
    assert cluster.pod_uid("elasticsearch-0") == before


def test_kubernetes_faults_fail_the_recovery_with_the_clusters_own_diagnosis(cluster, tmp_path):
    """The catalogue's Kubernetes faults, for real: claims that cannot be bound and an image that
    cannot be pulled fail the deployment at once (not after the rollout's timeout), a stopped
    kubelet fails the restore; each is diagnosed from the API and healed after its scenario."""
    result, report = cluster.run(tmp_path, str(ROOT / "features" / "faults" / "kubernetes.feature"))
    assert result.returncode == 0, result.stdout[-3000:]
    diagnoses = {p["phase"]: p["diagnosis"] for p in report["problems"] if p["kind"] == "failed"}
    assert "unbound" in json.dumps(report["problems"]) and "ImagePull" in json.dumps(report["problems"])
    assert "kubelet" in diagnoses["restore-snapshots"] and "connection refused" in diagnoses["restore-snapshots"]
    assert not [p for p in report["problems"] if p["kind"] == "error"], report["problems"]
    status = json.loads(drdrill("cluster", "status", "--json").stdout)
    assert status["up"] and set(status["processes"].values()) == {"running"}  # the kubelet is back


def test_the_runbook_drills_recover_through_kubernetes(cluster, tmp_path):
    """The same scenarios and steps as on every target. Full site: site loss (the StatefulSets
    and their claims deleted), the manifests applied again, the rollout, restore, verification,
    and the Service switched back: T_recovered follows a read through the Service. Then one
    tenant's recovery beside the others."""
    es_pod, es_claim = cluster.pod_uid("elasticsearch-0"), _claim_uid(cluster, "data-elasticsearch-0")
    # Tenants of the drill's own: the platform's have backups in the store, which a drill never
    # writes beside (they would become someone's newest recovery point).
    config = tmp_path / "drill.toml"
    config.write_text(cluster.config.read_text() + '\n[data]\ntenants = ["drill1/a", "drill1/b", "drill2/a"]\n')
    result, report = cluster.run(tmp_path, str(ROOT / "features" / "full_site_recovery.feature"),
                                 str(ROOT / "features" / "single_tenant_recovery.feature"), config=config)
    assert result.returncode == 0, result.stdout[-3000:]
    assert report["verdict"] == "passed" and len(report["scenarios"]) == 2
    phases = [p["name"] for p in report["phases"]]
    assert phases.index("disaster") < phases.index("deploy-services") < phases.index("restore-snapshots") \
        < phases.index("verify") < phases.index("switch-traffic")
    switch = report["evidence"]["notes"]["traffic_switch"]
    assert switch["endpoints"] == ES_PODS and switch["probe_count"] == 1000  # docs_per_index
    target = report["evidence"]["notes"]["target"]
    assert target["kind"] == "kubernetes" and "statefulset.apps/elasticsearch" in target["applied"]
    # On three nodes, with a replica per shard ([data] replicas unset: one, from the live
    # cluster's data nodes), and the replica phase timed on its own.
    assert target["elasticsearch_nodes"] == 3 and target["elasticsearch_pods"] == ES_PODS
    (site_loss,) = [lost for lost in target["site_loss"] if lost["statefulset"] == "elasticsearch"]
    assert site_loss["pods"] == ES_PODS and site_loss["claims"] == [f"data-{pod}" for pod in ES_PODS]
    assert {restore["replicas"] for restore in report["evidence"]["notes"]["restore"]} == {1}
    assert "restore-replicas" in phases
    assert cluster.pod_uid("elasticsearch-0") != es_pod and _claim_uid(cluster, "data-elasticsearch-0") != es_claim
    selector = cluster.kube.core().read_namespaced_service("elasticsearch", cluster.namespace).spec.selector
    assert selector == {"app": "elasticsearch"}  # the Service is the platform's again



def _claim_uid(cluster: Cluster, name: str) -> str:
    return str(cluster.kube.core().read_namespaced_persistent_volume_claim(name, cluster.namespace).metadata.uid)


def test_cluster_down_leaves_no_process_netns_interface_or_chain(cluster):
    result = drdrill("cluster", "down", "--json", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["leftovers"] == []
    # Seen independently of drdrill's own check.
    assert not cluster_processes()
    assert not Path("/sys/class/net/drdrill0").exists()
    assert not [n for n in (os.listdir("/var/run/netns") if os.path.isdir("/var/run/netns") else [])
                if n.startswith("cni-")]
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            saved = subprocess.run([tool], capture_output=True, text=True, check=True).stdout
            assert "KUBE-" not in saved and "CNI-" not in saved
    assert not ClusterHost(load_paths()).records()
