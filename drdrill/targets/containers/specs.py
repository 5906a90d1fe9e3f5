"""What each container of the containers target runs with: image, published ports, environment,
volumes, user, limits. Pure data computed from a stack's state (no Docker here), so the
containers' shape is unit-tested without an engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drdrill.adapters.platform import Endpoints
from drdrill.targets.services import platform_es_settings

SERVICES = ("elasticsearch", "minio", "postgres")
# Toxiproxy stands between every client and MinIO: MinIO's port is the proxy's, so the store's
# network can be made slow or cut (faults) without any client being told.
CONTAINERS = (*SERVICES, "toxiproxy")
TOXIPROXY_API_PORT = 8474
DATA_PATHS = {"elasticsearch": "/usr/share/elasticsearch/data", "minio": "/data",
              "postgres": "/var/lib/postgresql/data"}


@dataclass(frozen=True)
class ContainerSpec:
    """How one service's container runs (pure data: no Docker in here)."""

    service: str
    image: str
    publish: dict[int, int]  # container port -> port on 127.0.0.1
    env: dict[str, str] = field(repr=False)
    volumes: dict[str, str]  # named volume or host path -> path in the container
    user: str | None = None
    command: list[str] | None = None
    mem_limit: str | None = None
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> mount options (a size-limited disk)
    network_mode: str | None = None  # "container:<name>": that container's network namespace
    entrypoint: list[str] | None = None


def es_mem_limit(es_heap_mb: int, state: dict[str, Any]) -> str:
    """A node's memory limit: heap, as much again off-heap, and room for a tmpfs data disk
    (tmpfs pages count against the limit)."""
    return f"{es_heap_mb * 2 + 512 + int(state.get('es_data_limit_mb') or 0)}m"


def container_specs(stack: str, state: dict[str, Any], es_uid: int, es_heap_mb: int) -> dict[str, ContainerSpec]:
    """The containers of ``state`` (ports, credentials, images, repository path; Elasticsearch's
    data on a size-limited tmpfs while ``es_data_limit_mb`` is set: the full-disk fault). A
    cluster's node containers are :func:`drdrill.targets.containers.es_nodes.cluster_specs`'."""
    ep = Endpoints.from_dict(state["endpoints"])
    ports, images = state["ports"], state["images"]
    assert ep.es_repo_root is not None
    repo = str(ep.es_repo_root)
    es_env = {
        **platform_es_settings(f"drdrill-{stack}"[:60], ep.es_repo_root),
        # Inside the container; the engine publishes it on 127.0.0.1 only.
        "http.host": "0.0.0.0", "http.port": "9200", "transport.host": "127.0.0.1",  # noqa: S104
        "ES_JAVA_OPTS": f"-Xms{es_heap_mb}m -Xmx{es_heap_mb}m",
    }
    es_volumes = {volume_name(stack, "elasticsearch"): DATA_PATHS["elasticsearch"], repo: repo}
    es_tmpfs = {}
    if state.get("es_data_limit_mb"):
        del es_volumes[volume_name(stack, "elasticsearch")]
        es_tmpfs = {DATA_PATHS["elasticsearch"]: f"size={int(state['es_data_limit_mb'])}m,mode=1777"}
    return {
        # Any uid in group 0 may run the (official-style) image; this one owns the repository.
        "elasticsearch": ContainerSpec("elasticsearch", images["elasticsearch"], {9200: ports["elasticsearch"]},
                                       es_env, es_volumes, user=f"{es_uid}:0",
                                       mem_limit=es_mem_limit(es_heap_mb, state), tmpfs=es_tmpfs),
        # Not published: clients reach MinIO through Toxiproxy, on the port the endpoint names.
        "minio": ContainerSpec("minio", images["minio"], {},
                               {"MINIO_ROOT_USER": ep.s3_access_key, "MINIO_ROOT_PASSWORD": ep.s3_secret_key,
                                "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"},
                               {volume_name(stack, "minio"): DATA_PATHS["minio"]},
                               command=["server", "--quiet", "--address", ":9000", "/data"]),
        "postgres": ContainerSpec("postgres", images["postgres"], {5432: ports["postgres"]},
                                  {"POSTGRES_PASSWORD": ep.pg_admin_password},
                                  {volume_name(stack, "postgres"): DATA_PATHS["postgres"]}),
        "toxiproxy": ContainerSpec("toxiproxy", images["toxiproxy"],
                                   {TOXIPROXY_API_PORT: ports["toxiproxy"], 9000: ports["minio"]}, {}, {},
                                   command=["-host", "0.0.0.0", "-port", str(TOXIPROXY_API_PORT)]),  # noqa: S104
    }


def container_name(stack: str, service: str) -> str:
    return f"drdrill-{stack}-{service}"


def volume_name(stack: str, service: str) -> str:
    return f"drdrill-{stack}-{service}-data"
