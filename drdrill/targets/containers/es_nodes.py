"""Elasticsearch as a cluster of node containers on the containers target (``[stack]
elasticsearch_nodes`` > 1). Pure data, like :mod:`drdrill.targets.containers.specs`: names and
container specs computed from a stack's state, no Docker here.

The nodes share one network namespace, held by a sandbox container (as a Kubernetes pod's
pause container holds its pod's): each node binds its own HTTP and transport ports on it and
they find each other on 127.0.0.1. A transport bound to a non-loopback address would make
Elasticsearch enforce its production bootstrap checks, and vm.max_map_count (a host-wide
sysctl, 65530 by default) fails them; on loopback the nodes form a real cluster - discovery,
election, shard allocation, recovery between nodes - without touching the host. The sandbox
publishes every node's HTTP port on 127.0.0.1 and outlives the nodes' loss (it is the site's
network, not a node); a node killed takes only its own process and ports with it.
"""

from __future__ import annotations

from typing import Any

from drdrill.adapters.platform import Endpoints
from drdrill.targets.containers.specs import DATA_PATHS, ContainerSpec, container_name, es_mem_limit, volume_name
from drdrill.targets.services import platform_es_settings

SANDBOX = "elasticsearch-net"  # the container holding the nodes' network namespace
HTTP_PORT, TRANSPORT_PORT = 9200, 9300  # node i listens on these + i inside the namespace
# As drdrill's pause image runs it: PID 1 must exit on SIGTERM itself (the kernel gives PID 1
# no default handler). Set explicitly so that any image with bash can hold the namespace.
SANDBOX_ENTRYPOINT = ["/bin/bash", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]


def node_count(state: dict[str, Any]) -> int:
    """The node count the stack was started with (its state says, not today's setting)."""
    return int((state.get("settings") or {}).get("elasticsearch_nodes") or 1)


def node_name(index: int) -> str:
    """Elasticsearch's node.name of node ``index``: the local target's names, so that a fault
    maps a name ``_cat/nodes`` gives to ``elasticsearch/<name>`` on either target."""
    return f"drdrill-es-{index}"


def node_key(index: int) -> str:
    return f"elasticsearch/{node_name(index)}"


def node_container(stack: str, index: int) -> str:
    return container_name(stack, f"elasticsearch-{index}")


def node_volume(stack: str, index: int) -> str:
    return volume_name(stack, f"elasticsearch-{index}")


def es_containers(stack: str, state: dict[str, Any]) -> dict[str, str]:
    """Elasticsearch's containers by key: ``elasticsearch`` alone, else ``elasticsearch/<node>``
    for each node (the sandbox is not a node: it is left out)."""
    count = node_count(state)
    if count == 1:
        return {"elasticsearch": container_name(stack, "elasticsearch")}
    return {node_key(i): node_container(stack, i) for i in range(count)}


def all_containers(stack: str, state: dict[str, Any], services: tuple[str, ...]) -> dict[str, str]:
    """Every container of ``services`` by key, Elasticsearch's nodes as ``elasticsearch.<node>``
    (the local target's log names); without a state, the single-node names."""
    es = es_containers(stack, state) if state else {"elasticsearch": container_name(stack, "elasticsearch")}
    return {key.replace("/", "."): name for key, name in es.items()} | \
        {service: container_name(stack, service) for service in services if service != "elasticsearch"}


def es_volumes(stack: str, state: dict[str, Any]) -> list[str]:
    count = node_count(state)
    return [volume_name(stack, "elasticsearch")] if count == 1 else [node_volume(stack, i) for i in range(count)]


def matching(stack: str, state: dict[str, Any], service: str) -> list[str]:
    """The containers ``service`` names: ``elasticsearch`` all its nodes, ``elasticsearch/<node>``
    one of them, any other service its one container."""
    if service == "elasticsearch" or service.startswith("elasticsearch/"):
        return [name for key, name in es_containers(stack, state).items() if service in ("elasticsearch", key)]
    return [container_name(stack, service)]


def node_urls(state: dict[str, Any]) -> list[str]:
    """Every node's HTTP address on the host, node 0 first (empty for one node)."""
    ports = state["ports"].get("elasticsearch_nodes") or []
    return [f"http://127.0.0.1:{port}" for port in ports] if len(ports) > 1 else []


def cluster_specs(stack: str, state: dict[str, Any], es_uid: int, es_heap_mb: int) -> dict[str, ContainerSpec]:
    """The sandbox (key :data:`SANDBOX`) and one container per node (key ``elasticsearch/<node>``):
    seed hosts are every node's transport address, the first election among all nodes, one
    repository directory (the same host path) mounted into each."""
    ep = Endpoints.from_dict(state["endpoints"])
    assert ep.es_repo_root is not None
    repo = str(ep.es_repo_root)
    count, ports, images = node_count(state), state["ports"]["elasticsearch_nodes"], state["images"]
    names = [node_name(i) for i in range(count)]
    sandbox = container_name(stack, SANDBOX)
    specs = {SANDBOX: ContainerSpec(
        SANDBOX, images.get("pause") or images["elasticsearch"], {HTTP_PORT + i: ports[i] for i in range(count)},
        {}, {}, mem_limit="32m", entrypoint=SANDBOX_ENTRYPOINT)}
    for i in range(count):
        env = {
            **platform_es_settings(f"drdrill-{stack}"[:60], ep.es_repo_root, node_name=names[i],
                                   seed_hosts=[f"127.0.0.1:{TRANSPORT_PORT + j}" for j in range(count)],
                                   master_nodes=names),
            # HTTP on every interface of the namespace (the sandbox's published ports reach it
            # there); the address a node advertises is the host's, where clients reach it.
            "http.host": "0.0.0.0", "http.port": str(HTTP_PORT + i),  # noqa: S104
            "http.publish_host": "127.0.0.1", "http.publish_port": str(ports[i]),
            "transport.host": "127.0.0.1", "transport.port": str(TRANSPORT_PORT + i),
            "ES_JAVA_OPTS": f"-Xms{es_heap_mb}m -Xmx{es_heap_mb}m",
        }
        volumes = {node_volume(stack, i): DATA_PATHS["elasticsearch"], repo: repo}
        tmpfs = {}
        if state.get("es_data_limit_mb"):  # the full-disk fault: every node's data on a small disk
            del volumes[node_volume(stack, i)]
            tmpfs = {DATA_PATHS["elasticsearch"]: f"size={int(state['es_data_limit_mb'])}m,mode=1777"}
        specs[node_key(i)] = ContainerSpec(
            "elasticsearch", images["elasticsearch"], {}, env, volumes, user=f"{es_uid}:0",
            mem_limit=es_mem_limit(es_heap_mb, state), tmpfs=tmpfs, network_mode=f"container:{sandbox}")
    return specs
