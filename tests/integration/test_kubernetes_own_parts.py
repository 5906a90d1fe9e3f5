"""Exactly the cluster's own parts, on drdrill's own cluster (`drdrill cluster up`), brought up
for this module: a site loss deletes the platform's StatefulSets with their own pods and claims
and leaves a StatefulSet of a similar name (``elasticsearch-warm``, claims
``data-elasticsearch-warm-N``) and a pod that only carries ``app=elasticsearch`` untouched; then
`cluster down` removes the cluster's network namespaces, chains and logs and leaves foreign ones
(planted just before) where they are.

The cases share the cluster and run in file order; the last one takes it down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from drdrill.adapters.kubernetes import KubeCluster
from drdrill.settings import load_paths
from drdrill.targets.kubernetes.node import ClusterHost

from .k8s_processes import cluster_processes

pytestmark = [pytest.mark.long, pytest.mark.integration, pytest.mark.slow, pytest.mark.kubernetes]

ROOT = Path(__file__).resolve().parents[2]
PAUSE = "docker.io/drdrill/pause:1"  # imported by `cluster up` (the pod sandbox's image)
FOREIGN_NETNS = "cni-foreign-test"
FOREIGN_CHAINS = ("KUBE-FOREIGN-TEST", "CNI-FOREIGN-TEST")
FOREIGN_POD_LOGS = Path("/var/log/pods/foreign_test-0_00000000-0000-0000-0000-00000000f00d")
FOREIGN_CONTAINER_LOG = Path("/var/log/containers/test-0_foreign_app-f00d.log")


def drdrill(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    up = drdrill("cluster", "up", "--json", timeout=3600)
    assert up.returncode == 0, up.stderr[-2000:]
    summary = json.loads(up.stdout)
    summary["kube"] = KubeCluster(Path(summary["kubeconfig"]))
    try:
        yield summary
    finally:
        summary["kube"].close()
        if ClusterHost(load_paths()).records():
            drdrill("cluster", "down", timeout=600)


def _warm_statefulset() -> dict:
    """A second StatefulSet whose claims ``data-elasticsearch-warm-0`` start with
    ``data-elasticsearch-``: a prefix rule would take them for elasticsearch's."""
    labels = {"app": "elasticsearch-warm"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "elasticsearch-warm", "labels": labels},
            "spec": {"serviceName": "elasticsearch-warm", "replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "warm", "image": PAUSE, "imagePullPolicy": "Never",
                                         "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}}]}}


def _bystander_pod() -> dict:
    """A pod that carries ``app=elasticsearch`` and nothing else of the StatefulSet's (no owner):
    never ready (its probe knocks on a closed port), so no Service or port-forward picks it."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "elasticsearch-bystander", "labels": {"app": "elasticsearch"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "bystander", "image": PAUSE, "imagePullPolicy": "Never",
                "readinessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": 5}}]}}


def _uids(kube: KubeCluster, namespace: str) -> dict[str, str]:
    core, apps = kube.core(), kube.apps()
    return {"statefulset elasticsearch-warm": apps.read_namespaced_stateful_set("elasticsearch-warm",
                                                                                 namespace).metadata.uid,
            "pod elasticsearch-warm-0": core.read_namespaced_pod("elasticsearch-warm-0", namespace).metadata.uid,
            "claim data-elasticsearch-warm-0": core.read_namespaced_persistent_volume_claim(
                "data-elasticsearch-warm-0", namespace).metadata.uid,
            "pod elasticsearch-bystander": core.read_namespaced_pod("elasticsearch-bystander",
                                                                    namespace).metadata.uid}


def test_site_loss_deletes_the_platforms_statefulsets_and_nothing_of_a_similar_name(cluster, tmp_path):
    kube, namespace = cluster["kube"], cluster["namespace"]
    kube.apps().create_namespaced_stateful_set(namespace, _warm_statefulset())
    kube.core().create_namespaced_pod(namespace, _bystander_pod())
    kube.wait_statefulsets(namespace, ["elasticsearch-warm"], timeout_s=180)
    before = _uids(kube, namespace)
    es_pod = kube.core().read_namespaced_pod("elasticsearch-0", namespace).metadata.uid
    es_claim = kube.core().read_namespaced_persistent_volume_claim("data-elasticsearch-0", namespace).metadata.uid

    config = tmp_path / "drill.toml"  # the drill's own tenants, never beside the platform's backups
    config.write_text(Path(cluster["config"]).read_text() + '\n[data]\ntenants = ["drill1/a", "drill2/a"]\n')
    report_dir = tmp_path / f"report-{uuid.uuid4().hex[:6]}"
    result = drdrill("run", str(ROOT / "features" / "full_site_recovery.feature"), "--target", "live", "--config",
                     str(config), "--report-dir", str(report_dir), "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "passed"
    lost = {r["statefulset"]: r for r in report["evidence"]["notes"]["target"]["site_loss"]}
    es_pods = [f"elasticsearch-{n}" for n in range(3)]  # the platform's three nodes
    assert lost["elasticsearch"]["pods"] == es_pods
    assert lost["elasticsearch"]["claims"] == [f"data-{pod}" for pod in es_pods]  # not data-elasticsearch-warm-0

    # The platform's own were lost and made again ...
    assert kube.core().read_namespaced_pod("elasticsearch-0", namespace).metadata.uid != es_pod
    assert kube.core().read_namespaced_persistent_volume_claim("data-elasticsearch-0",
                                                               namespace).metadata.uid != es_claim
    # ... and the StatefulSet of a similar name, its claim and the pod with only the label are as they were.
    assert _uids(kube, namespace) == before
    pod = kube.core().read_namespaced_pod("elasticsearch-warm-0", namespace)
    assert pod.metadata.deletion_timestamp is None and pod.status.phase == "Running"


def _netns() -> set[str]:
    return set(os.listdir("/var/run/netns")) if os.path.isdir("/var/run/netns") else set()


def _saved() -> str:
    return "".join(subprocess.run([tool], capture_output=True, text=True, check=True).stdout
                   for tool in ("iptables-save", "ip6tables-save") if shutil.which(tool))



def _plant_foreign() -> None:
    subprocess.run(["ip", "netns", "add", FOREIGN_NETNS], check=True, capture_output=True)
    for chain in FOREIGN_CHAINS:
        subprocess.run(["iptables", "-w", "-t", "nat", "-N", chain], check=True, capture_output=True)
    # A rule of its own, naming an address that is not the cluster's.
    subprocess.run(["iptables", "-w", "-t", "nat", "-A", "KUBE-FOREIGN-TEST", "-d", "192.0.2.0/24", "-j", "RETURN"],
                   check=True, capture_output=True)
    (FOREIGN_POD_LOGS / "app").mkdir(parents=True)
    (FOREIGN_POD_LOGS / "app" / "0.log").write_text("not drdrill's\n")
    FOREIGN_CONTAINER_LOG.parent.mkdir(parents=True, exist_ok=True)
    FOREIGN_CONTAINER_LOG.symlink_to(FOREIGN_POD_LOGS / "app" / "0.log")


def _remove_foreign() -> None:
    subprocess.run(["ip", "netns", "delete", FOREIGN_NETNS], capture_output=True)
    for chain in FOREIGN_CHAINS:
        subprocess.run(["iptables", "-w", "-t", "nat", "-F", chain], capture_output=True)
        subprocess.run(["iptables", "-w", "-t", "nat", "-X", chain], capture_output=True)
    FOREIGN_CONTAINER_LOG.unlink(missing_ok=True)
    shutil.rmtree(FOREIGN_POD_LOGS, ignore_errors=True)


def test_cluster_down_removes_its_own_netns_chains_and_logs_and_leaves_foreign_ones(cluster):
    own_netns = {n for n in _netns() if n.startswith("cni-")}
    assert own_netns, "the platform's pods have network namespaces"
    own_pod_logs = set(os.listdir("/var/log/pods"))
    assert any("_elasticsearch-0_" in d for d in own_pod_logs)
    _remove_foreign()  # an earlier run's, if it died before its clean-up
    _plant_foreign()
    try:
        result = drdrill("cluster", "down", "--json", timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        down = json.loads(result.stdout)
        assert down["leftovers"] == []

        # The foreign ones are where they were ...
        assert FOREIGN_NETNS in _netns()
        for chain in FOREIGN_CHAINS:
            assert subprocess.run(["iptables", "-w", "-t", "nat", "-S", chain], capture_output=True).returncode == 0
        assert "-A KUBE-FOREIGN-TEST -d 192.0.2.0/24 -j RETURN" in _saved()
        # ... the logs too, unless the kubelet's own log GC took them before it was stopped (every
        # minute it removes the pod log directories of pods it does not know, and dangling links):
        # what drdrill removed it says, and a foreign log is never among them.
        assert not {str(FOREIGN_POD_LOGS), str(FOREIGN_CONTAINER_LOG)} & set(down["removed_logs"])
        if FOREIGN_POD_LOGS.exists():
            assert (FOREIGN_POD_LOGS / "app" / "0.log").read_text() == "not drdrill's\n"
            assert FOREIGN_CONTAINER_LOG.is_symlink()
        # ... and nothing of the cluster's is left: seen independently of drdrill's own check.
        assert not own_netns & _netns()
        assert not [n for n in _netns() if n.startswith("cni-") and n != FOREIGN_NETNS]
        chains = [line.split()[0][1:] for line in _saved().splitlines() if line.startswith(":")]
        assert sorted(c for c in chains if c.startswith(("KUBE-", "CNI-"))) == sorted(FOREIGN_CHAINS)
        assert not [line for line in _saved().splitlines() if "-j KUBE-" in line or "-j CNI-" in line]
        assert not own_pod_logs & (set(os.listdir("/var/log/pods")) - {FOREIGN_POD_LOGS.name})
        assert not Path("/sys/class/net/drdrill0").exists()
        assert not cluster_processes()
        assert not ClusterHost(load_paths()).records()
    finally:
        _remove_foreign()
