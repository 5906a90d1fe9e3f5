"""The containers target's pure parts: the container specs, the image inputs hash, the
[containers] settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.adapters.platform import Endpoints
from drdrill.errors import ConfigError
from drdrill.provision.images import POSTGRES_DOCKERFILE, inputs_digest
from drdrill.settings import ContainerImages, DrillSettings, settings_from_dict
from drdrill.targets.containers.specs import container_name, container_specs, volume_name


def _state(tmp_path: Path) -> dict:
    ep = Endpoints("http://127.0.0.1:1001", "http://127.0.0.1:1002", "drdrill-ak", "s3-secret", "b", "127.0.0.1", 1003,
                   "es_metadata", "es_user", "pg-secret", "postgres", "admin-secret", es_repo_root=tmp_path / "repo")
    return {"endpoints": ep.to_dict(),
            "ports": {"elasticsearch": 1001, "minio": 1002, "postgres": 1003, "toxiproxy": 1004},
            "images": {"elasticsearch": "drdrill/elasticsearch:9.5.4", "minio": "drdrill/minio:v1",
                       "postgres": "drdrill/postgres:15", "toxiproxy": "drdrill/toxiproxy:v2"}}


def test_specs_publish_each_service_where_its_endpoint_points(tmp_path):
    specs = container_specs("s1", _state(tmp_path), es_uid=998, es_heap_mb=512)
    # MinIO is reached only through the proxy, on the port the S3 endpoint names.
    assert {s: spec.publish for s, spec in specs.items()} == {
        "elasticsearch": {9200: 1001}, "minio": {}, "postgres": {5432: 1003}, "toxiproxy": {8474: 1004, 9000: 1002}}
    es = specs["elasticsearch"]
    # The repository is the same path inside and out (snapshots are copied to MinIO from the host).
    assert es.volumes[str(tmp_path / "repo")] == str(tmp_path / "repo")
    assert es.env["path.repo"] == str(tmp_path / "repo") and es.env["discovery.type"] == "single-node"
    assert es.user == "998:0" and es.mem_limit == "1536m" and "-Xmx512m" in es.env["ES_JAVA_OPTS"]
    assert volume_name("s1", "elasticsearch") in es.volumes
    assert container_name("s1", "minio") == "drdrill-s1-minio"
    assert not es.tmpfs


def test_the_full_disk_fault_puts_elasticsearch_data_on_a_size_limited_tmpfs(tmp_path):
    es = container_specs("s1", {**_state(tmp_path), "es_data_limit_mb": 64}, es_uid=998, es_heap_mb=512)[
        "elasticsearch"]
    assert es.tmpfs == {"/usr/share/elasticsearch/data": "size=64m,mode=1777"}
    assert volume_name("s1", "elasticsearch") not in es.volumes and str(tmp_path / "repo") in es.volumes


def test_secrets_go_to_the_environment_never_to_the_command(tmp_path):
    specs = container_specs("s1", _state(tmp_path), es_uid=998, es_heap_mb=512)
    assert specs["minio"].env["MINIO_ROOT_PASSWORD"] == "s3-secret"
    assert specs["postgres"].env["POSTGRES_PASSWORD"] == "admin-secret"
    for spec in specs.values():
        assert not any(secret in " ".join(spec.command or []) for secret in ("s3-secret", "admin-secret", "pg-secret"))
        assert not any(s in repr(spec) for s in ("s3-secret", "admin-secret"))  # env is left out of the repr


def test_image_inputs_change_exactly_when_an_input_does():
    base = inputs_digest("sha256:a", POSTGRES_DOCKERFILE, {"entrypoint.sh": "x"})
    assert base == inputs_digest("sha256:a", POSTGRES_DOCKERFILE, {"entrypoint.sh": "x"})
    assert base != inputs_digest("sha256:b", POSTGRES_DOCKERFILE, {"entrypoint.sh": "x"})  # a new base
    assert base != inputs_digest("sha256:a", POSTGRES_DOCKERFILE + "#", {"entrypoint.sh": "x"})
    assert base != inputs_digest("sha256:a", POSTGRES_DOCKERFILE, {"entrypoint.sh": "y"})
    assert base != inputs_digest("sha256:a", POSTGRES_DOCKERFILE, {"entrypoint.sh": "x"}, ("9.5.4",))


def test_containers_table_names_images():
    settings = settings_from_dict({"containers": {"postgres_image": "postgres:15",
                                                  "elasticsearch_image": "docker.elastic.co/elasticsearch/"
                                                                         "elasticsearch:9.5.4"}}, DrillSettings())
    assert settings.images == ContainerImages(elasticsearch="docker.elastic.co/elasticsearch/elasticsearch:9.5.4",
                                              postgres="postgres:15")
    assert settings.images.named() == {"elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:9.5.4",
                                       "postgres": "postgres:15"}
    assert DrillSettings().images.named() == {}


@pytest.mark.parametrize("raw", [{"postgres_image": "Postgres 15"}, {"minio_image": 15}, {"redis_image": "redis"}])
def test_bad_containers_settings_name_the_key(raw):
    with pytest.raises(ConfigError) as failure:
        settings_from_dict({"containers": raw}, DrillSettings())
    assert "containers" in str(failure.value)
