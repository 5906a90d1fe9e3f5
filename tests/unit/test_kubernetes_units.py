"""Kubernetes pieces without a cluster: the node's files and command lines, the platform
overlay, the live target's Kubernetes keys and the one judgement of the backup CronJob's health."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from drdrill.adapters.kubernetes_jobs import job_run
from drdrill.core.backup_job import BackupJobHealth, JobRun, backup_job_findings
from drdrill.errors import ConfigError
from drdrill.settings import DEFAULT_ES_VERSION, DEFAULT_MINIO_VERSION
from drdrill.settings.live import LiveSecrets, LiveTargetSettings
from drdrill.targets.kubernetes import platform as plat
from drdrill.targets.kubernetes.config_files import (
    START_ORDER,
    ClusterLayout,
    command_lines,
    containerd_toml,
    kubelet_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = ClusterLayout(Path("/state/cluster"), Path("/cache/cluster-images"), "192.0.2.7")
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_every_component_starts_in_order_with_files_not_secrets_on_its_command_line():
    argv = command_lines(LAYOUT, Path("/k8s/bin"), "/usr/bin/etcd", "/usr/bin/containerd")
    assert list(argv) == list(START_ORDER)
    joined = " ".join(" ".join(a) for a in argv.values())
    assert "BEGIN" not in joined and "password" not in joined.lower()
    apiserver = argv["kube-apiserver"]
    assert "--advertise-address=192.0.2.7" in apiserver and "--bind-address=0.0.0.0" in apiserver
    assert "--kubelet-preferred-address-types=InternalIP" in apiserver
    assert "--enable-hostpath-provisioner" in argv["kube-controller-manager"]


def test_containerd_and_kubelet_configs_carry_what_these_machines_need():
    toml = tomllib.loads(containerd_toml(LAYOUT, "docker.io/drdrill/pause:1"))
    cri = toml["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True and cri["cni"]["bin_dir"] == "/usr/lib/cni"
    assert toml["grpc"]["address"] == str(LAYOUT.containerd_socket)
    kubelet = yaml.safe_load(kubelet_yaml(LAYOUT))
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["authentication"]["anonymous"]["enabled"] is False


def test_the_overlay_maps_the_bases_images_to_local_builds_and_binds_the_snapshot_volume(tmp_path):
    overlay = tmp_path / "state" / "platform"
    images = {"elasticsearch": "drdrill/elasticsearch:9.5.4", "postgres": "drdrill/postgres:15"}
    text = plat.overlay_kustomization(ROOT / "deploy" / "k8s" / "base", overlay, images)
    doc = yaml.safe_load(text)
    assert not Path(doc["resources"][0]).is_absolute()  # kustomize refuses absolute bases
    assert (overlay / doc["resources"][0]).resolve() == (ROOT / "deploy" / "k8s" / "base").resolve()
    images = {i["name"]: (i["newName"], i["newTag"]) for i in doc["images"]}
    assert images == {"elasticsearch": ("docker.io/drdrill/elasticsearch", "9.5.4"),
                      "postgres": ("docker.io/drdrill/postgres", "15")}
    pv = yaml.safe_load(plat.snapshot_volume())
    assert pv["spec"]["hostPath"]["path"] == str(plat.SNAPSHOT_DIR)
    assert pv["spec"]["claimRef"] == {"namespace": plat.NAMESPACE, "name": "es-snapshots"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # the claim outlives a site loss


def test_the_dev_overlay_names_the_versions_drdrill_builds():
    doc = yaml.safe_load((ROOT / "deploy" / "k8s" / "overlays" / "dev" / "kustomization.yaml").read_text())
    tags = {i["name"]: str(i["newTag"]) for i in doc["images"]}
    assert tags["elasticsearch"] == DEFAULT_ES_VERSION and tags["minio"] == DEFAULT_MINIO_VERSION


def test_the_base_keeps_the_runbooks_names_and_no_secret_values():
    docs = [d for f in (ROOT / "deploy" / "k8s" / "base").glob("*.yaml") if f.name != "kustomization.yaml"
            for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("StatefulSet", "elasticsearch"), ("StatefulSet", "postgres"), ("Service", "minio"),
            ("CronJob", "es-backup"), ("Namespace", "es-serverless")} <= kinds
    assert not any(d["kind"] == "Secret" for d in docs)
    cron = next(d for d in docs if d["kind"] == "CronJob")
    assert cron["spec"]["schedule"] == "0 2 * * *"


def test_the_generated_live_config_parses_with_its_kubernetes_keys(tmp_path):
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "kustomization.yaml").write_text("resources: []\n")
    text = plat.live_target_toml(tmp_path / "admin.yaml", tmp_path / "secrets", tmp_path / "platform")
    settings = LiveTargetSettings.from_table(tomllib.loads(text)["target"])
    assert settings.kubernetes is not None and settings.kubernetes.namespace == plat.NAMESPACE
    assert settings.kubernetes.kustomization == tmp_path / "platform"
    assert settings.elasticsearch_url == "" and settings.may_be_destroyed
    (tmp_path / "secrets").mkdir()
    for name in ("s3_access_key", "s3_secret_key", "postgres_dsn", "dump_password"):
        (tmp_path / "secrets" / name).write_text(f"value-of-{name}")
    assert LiveSecrets.read(settings, {}).dump_password == b"value-of-dump_password"  # read from the files
    assert "value-of-" not in json.dumps(settings.describe())  # where the secrets are, never what


BASE = {"environment": "staging", "s3_bucket": "b", "s3_access_key_env": "A", "s3_secret_key_env": "S",
        "postgres_dsn_env": "P", "dump_password_env": "D", "repository": "fs", "fs_repository_dir": "/repo"}


@pytest.mark.parametrize(("extra", "words"), [
    ({"kubeconfig": "/k.yaml"}, "kubeconfig and namespace go together"),
    ({"kubeconfig": "/k.yaml", "namespace": "ns", "elasticsearch_url": "http://es:9200"}, "port-forwards"),
    ({"kubeconfig": "/k.yaml", "namespace": "ns", "kustomization": "/nowhere"}, "holds no kustomization.yaml"),
    ({"kubeconfig": "", "namespace": "ns"}, "not a non-empty string"),
])
def test_bad_kubernetes_keys_name_the_problem(extra, words):
    with pytest.raises(ConfigError, match=words):
        LiveTargetSettings.from_table({**BASE, **extra})


def test_without_kubernetes_the_urls_stay_required():
    with pytest.raises(ConfigError, match="elasticsearch_url"):
        LiveTargetSettings.from_table(BASE)


def _run(name, outcome, hours_ago, log_tail=""):
    started = NOW - timedelta(hours=hours_ago)
    return JobRun(name, outcome, started, started + timedelta(minutes=1), "BackoffLimitExceeded" if outcome ==
                  "failed" else "", log_tail)


def _health(*runs, suspended=False):
    return BackupJobHealth("es-backup", "0 2 * * *", suspended, None, None, tuple(runs))


def test_a_healthy_backup_job_has_no_finding():
    assert backup_job_findings(_health(_run("a", "succeeded", 10)), NOW, 86400) == []


@pytest.mark.parametrize(("health", "words"), [
    (_health(_run("a", "succeeded", 10), suspended=True), "is suspended"),
    (_health(_run("a", "succeeded", 30), _run("b", "failed", 6, "curl: (22) error: 500")), "newest backup Job b"),
    (_health(), "no successful run on record"),
    (_health(_run("a", "succeeded", 30)), "longer ago than the RPO"),
])
def test_an_unhealthy_backup_job_fails_with_its_cause(health, words):
    failed = [f for f in backup_job_findings(health, NOW, 86400) if f.kind == "failed"]
    assert failed and words in failed[0].summary


def test_the_failed_runs_own_words_are_its_diagnosis_and_an_older_failure_is_a_warning():
    health = _health(_run("old", "failed", 30, "line 1\nelasticsearch: PUT /_snapshot failed\n"),
                     _run("new", "succeeded", 6))
    findings = backup_job_findings(health, NOW, 86400)
    assert [(f.kind, f.diagnosis) for f in findings] == [("warning", "elasticsearch: PUT /_snapshot failed")]
    newest_failed = _health(_run("a", "succeeded", 30), _run("b", "failed", 6, "x\ncurl: (22) 500"))
    assert "curl: (22) 500" in backup_job_findings(newest_failed, NOW, 86400)[0].diagnosis


def test_a_jobs_outcome_is_read_from_its_conditions():
    def job(*conditions):
        return SimpleNamespace(metadata=SimpleNamespace(name="j"), status=SimpleNamespace(
            conditions=[SimpleNamespace(type=t, status="True", reason=r, message="m", last_transition_time=NOW)
                        for t, r in conditions], start_time=NOW, completion_time=None))

    assert job_run(job(("Complete", ""))).outcome == "succeeded"
    failed = job_run(job(("Failed", "BackoffLimitExceeded")))
    assert failed.outcome == "failed" and failed.reason == "BackoffLimitExceeded: m" and failed.finished == NOW
    assert job_run(job()).outcome == "running"
