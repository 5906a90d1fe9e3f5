"""The in-cluster restore test (issue 21) on drdrill's own cluster (`drdrill cluster up`, brought
up for this module unless one runs already): the platform filled the platform's way and its
nightly CronJob run once; a Job made from CronJob drdrill-restore-test (`kubectl create job
--from=cronjob/...`) passes and pushes its metrics; its ServiceAccount is refused what it must
not do (SubjectAccessReview) and allowed what it needs; with the backup CronJob suspended the
next Job fails.

The cases share the cluster and run in file order. Hold `flock /tmp/drdrill-k8s.lock` around them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drdrill.adapters.kubernetes import KubeCluster
from drdrill.evidence.keys import read_public
from drdrill.settings import load_paths
from drdrill.targets.kubernetes import platform as plat
from drdrill.targets.kubernetes.node import ClusterHost

from .test_kubernetes import Cluster, _fill_the_platform_way, drdrill

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.kubernetes]

SERVICE_ACCOUNT = f"system:serviceaccount:{plat.NAMESPACE}:drdrill-restore-test"
# (verb, group, resource, subresource): what the restore test must never be able to do ...
REFUSED = [("delete", "", "pods", ""), ("delete", "apps", "statefulsets", ""),
           ("delete", "", "persistentvolumeclaims", ""), ("list", "", "secrets", ""), ("get", "", "secrets", ""),
           ("create", "", "pods", "exec"), ("patch", "batch", "cronjobs", ""), ("update", "batch", "cronjobs", ""),
           ("delete", "batch", "jobs", ""), ("create", "batch", "jobs", "")]
# ... and what it needs: the backup CronJob's record.
ALLOWED = [("get", "batch", "cronjobs", ""), ("list", "batch", "jobs", ""), ("watch", "batch", "jobs", ""),
           ("list", "", "pods", ""), ("get", "", "pods", "log")]


@dataclass
class RestoreCluster(Cluster):
    summary: dict


@pytest.fixture(scope="module")
def cluster() -> Iterator[RestoreCluster]:
    started_here = not ClusterHost(load_paths()).records()
    up = drdrill("cluster", "up", "--json", timeout=3600) if started_here else drdrill("cluster", "status", "--json")
    assert up.returncode == 0, up.stderr[-2000:]
    summary = json.loads(up.stdout)
    kube = KubeCluster(Path(summary["kubeconfig"]))
    found = RestoreCluster(Path(summary["kubeconfig"]), summary["namespace"], Path(summary["config"]), kube, summary)
    try:
        if started_here:
            _fill_the_platform_way(found)
        backup = drdrill("target", "backup-now", "--config", str(found.config), "--json")
        assert backup.returncode == 0, backup.stdout + backup.stderr
        yield found
    finally:
        kube.close()
        if started_here:
            drdrill("cluster", "down", timeout=600)


def _run_job(cluster: Cluster) -> tuple[str, str, float, str]:
    """A Job made from the CronJob as an operator would; its outcome, its log's tail, its
    duration (the Job's own start and completion) and its name."""
    name = f"restore-test-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "job", f"--from=cronjob/{plat.RESTORE_TEST_CRONJOB}", name)
    run = cluster.kube.wait_job(cluster.namespace, name, timeout_s=1800)
    logs = cluster.kube.job_logs(cluster.namespace, name, tail_lines=40)
    seconds = (run.finished - run.started).total_seconds() if run.finished and run.started else float("nan")
    return run.outcome, logs, seconds, name


def _gauge(cluster: Cluster, name: str) -> list[str]:
    text = cluster.kube.service_proxy_get(cluster.namespace, "pushgateway", 9091, "/metrics")
    return [line for line in text.splitlines() if line.startswith(name)]


def test_cluster_up_prints_the_evidence_public_key_and_keeps_the_private_one_in_a_secret(cluster):
    public = Path(cluster.summary["evidence_public_key"])
    read_public(public)  # a PEM public key
    secret = cluster.kube.read_secret(cluster.namespace, plat.EVIDENCE_KEY_SECRET)
    assert secret["key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert public.with_suffix("").read_text() == secret["key"]


def test_a_job_from_the_cronjob_passes_the_restore_test_inside_the_cluster(cluster):
    outcome, logs, seconds, name = _run_job(cluster)
    print(f"\nin-cluster restore test Job {name}: {outcome} in {seconds:.0f}s")
    assert outcome == "succeeded", logs[-3000:]
    assert "passed" in logs
    assert any(line.split()[-1] == "1" for line in _gauge(cluster, "drdrill_restore_test_passed")), logs[-2000:]


def test_the_restore_tests_serviceaccount_may_read_the_backup_record_and_nothing_more(cluster):
    from kubernetes import client

    auth = client.AuthorizationV1Api(cluster.kube.api)

    def allowed(verb: str, group: str, resource: str, subresource: str) -> bool:
        review = auth.create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": SERVICE_ACCOUNT, "groups": ["system:serviceaccounts",
                                                         f"system:serviceaccounts:{plat.NAMESPACE}"],
                     "resourceAttributes": {"namespace": plat.NAMESPACE, "verb": verb, "group": group,
                                            "resource": resource, "subresource": subresource}}})
        return bool(review.status.allowed)

    assert [a for a in REFUSED if allowed(*a)] == []
    assert [a for a in ALLOWED if not allowed(*a)] == []


def test_a_suspended_backup_cronjob_fails_the_next_restore_test_job(cluster):
    before = cluster.kube.batch().read_namespaced_cron_job(plat.BACKUP_CRONJOB, cluster.namespace).spec.suspend
    cluster.kubectl("patch", "cronjob", plat.BACKUP_CRONJOB, "-p", '{"spec": {"suspend": true}}')
    try:
        outcome, logs, seconds, name = _run_job(cluster)
    finally:
        cluster.kubectl("patch", "cronjob", plat.BACKUP_CRONJOB, "-p",
                        json.dumps({"spec": {"suspend": bool(before)}}))
    print(f"\nin-cluster restore test Job {name} with the backup suspended: {outcome} in {seconds:.0f}s")
    assert outcome == "failed", logs[-3000:]
    assert "is suspended" in logs
    assert any(line.split()[-1] == "0" for line in _gauge(cluster, "drdrill_restore_test_passed")), logs[-2000:]


def test_the_jobs_pod_ran_as_its_serviceaccount_from_drdrills_image(cluster):
    pods = cluster.kube.core().list_namespaced_pod(cluster.namespace, label_selector="app=drdrill-restore-test").items
    assert pods
    for pod in pods:
        assert pod.spec.service_account_name == "drdrill-restore-test"
        assert pod.spec.containers[0].image.startswith("docker.io/drdrill/drdrill:")




def test_history_lists_the_jobs_runs_newest_first_and_a_fetched_pack_verifies(cluster, tmp_path):
    """Read from outside the cluster, as an auditor would: the store the Jobs wrote."""
    config = tmp_path / "drdrill.toml"
    config.write_text(cluster.config.read_text() + '\n[evidence]\nstore_bucket = "drdrill-evidence"\n')
    listed = drdrill("history", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    runs = [r for r in json.loads(listed.stdout)["runs"] if r["environment"] == "es-serverless"]
    finished = [r["finished_at"] for r in runs]
    assert finished == sorted(finished, reverse=True)
    # The suspended-backup Job ran after the passing one (file order): newest first.
    assert [r["verdict"] for r in runs][:1] == ["failed"]
    passing = next(r for r in runs if r["verdict"] == "passed")
    assert passing["rto_seconds"] and passing["point"]
    pack = tmp_path / "pack.tar.gz"
    fetched = drdrill("evidence", "fetch", "--config", str(config), passing["drill_id"], "--out", str(pack))
    assert fetched.returncode == 0, fetched.stderr
    verified = drdrill("evidence", "verify", str(pack), "--public-key", cluster.summary["evidence_public_key"])
    assert verified.returncode == 0, verified.stdout + verified.stderr
