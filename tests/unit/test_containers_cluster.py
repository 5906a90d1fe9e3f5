"""The containers target's Elasticsearch cluster as data: node names, which containers a
service name means, each node's container spec (no Docker here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drdrill.adapters.platform import Endpoints
from drdrill.targets.containers import es_nodes


def _state(tmp_path: Path, nodes: int = 3) -> dict[str, Any]:
    ports = [1001, 1011, 1021][:nodes]
    ep = Endpoints(f"http://127.0.0.1:{ports[0]}", "http://127.0.0.1:1002", "drdrill-ak", "s3-secret", "b",
                   "127.0.0.1", 1003, "es_metadata", "es_user", "pg-secret", "postgres", "admin-secret",
                   es_repo_root=tmp_path / "repo")
    state: dict[str, Any] = {"endpoints": ep.to_dict(), "settings": {"elasticsearch_nodes": nodes},
             "ports": {"elasticsearch": ports[0], "elasticsearch_nodes": ports, "minio": 1002, "postgres": 1003,
                       "toxiproxy": 1004},
             "images": {"elasticsearch": "drdrill/elasticsearch:9.5.4", "pause": "drdrill/pause:1"}}
    state["endpoints"]["elasticsearch_nodes"] = es_nodes.node_urls(state)
    return state


def test_service_names_mean_every_node_or_one(tmp_path):
    state = _state(tmp_path)
    every = es_nodes.matching("s1", state, "elasticsearch")
    assert every == ["drdrill-s1-elasticsearch-0", "drdrill-s1-elasticsearch-1", "drdrill-s1-elasticsearch-2"]
    assert es_nodes.matching("s1", state, "elasticsearch/drdrill-es-1") == ["drdrill-s1-elasticsearch-1"]
    assert es_nodes.matching("s1", state, "elasticsearch/drdrill-es-7") == []
    assert es_nodes.matching("s1", state, "postgres") == ["drdrill-s1-postgres"]
    # Another stack's containers never share a name with these.
    assert not set(every) & set(es_nodes.matching("s2", state, "elasticsearch"))
    # One node keeps the single container it always had.
    one = _state(tmp_path, 1)
    assert es_nodes.matching("s1", one, "elasticsearch") == ["drdrill-s1-elasticsearch"]
    assert es_nodes.node_urls(one) == [] and es_nodes.es_volumes("s1", one) == ["drdrill-s1-elasticsearch-data"]


def test_each_node_finds_the_others_and_shares_one_repository(tmp_path):
    state = _state(tmp_path)
    specs = es_nodes.cluster_specs("s1", state, es_uid=998, es_heap_mb=512)
    sandbox = specs.pop(es_nodes.SANDBOX)
    # The sandbox publishes every node's HTTP port (on 127.0.0.1: see specs' publish) and nothing else.
    assert sandbox.publish == {9200: 1001, 9201: 1011, 9202: 1021} and sandbox.image == "drdrill/pause:1"
    assert list(specs) == ["elasticsearch/drdrill-es-0", "elasticsearch/drdrill-es-1", "elasticsearch/drdrill-es-2"]
    for i, spec in enumerate(specs.values()):
        env = spec.env
        assert env["node.name"] == f"drdrill-es-{i}" and "discovery.type" not in env
        assert env["discovery.seed_hosts"] == "127.0.0.1:9300,127.0.0.1:9301,127.0.0.1:9302"
        assert env["cluster.initial_master_nodes"] == "drdrill-es-0,drdrill-es-1,drdrill-es-2"
        assert (env["http.port"], env["transport.port"]) == (str(9200 + i), str(9300 + i))
        assert env["transport.host"] == "127.0.0.1"  # loopback: no production bootstrap checks
        assert env["http.publish_port"] == str([1001, 1011, 1021][i])  # where the host reaches it
        assert env["path.repo"] == str(tmp_path / "repo") and spec.volumes[str(tmp_path / "repo")] == env["path.repo"]
        assert f"drdrill-s1-elasticsearch-{i}-data" in spec.volumes
        assert spec.publish == {} and spec.network_mode == "container:drdrill-s1-elasticsearch-net"
        assert spec.mem_limit == "1536m" and "-Xmx512m" in env["ES_JAVA_OPTS"]
    assert len({e.env["cluster.name"] for e in specs.values()}) == 1


def test_the_full_disk_fault_puts_every_node_on_a_small_disk(tmp_path):
    specs = es_nodes.cluster_specs("s1", {**_state(tmp_path), "es_data_limit_mb": 64}, es_uid=998, es_heap_mb=512)
    nodes = [s for key, s in specs.items() if key != es_nodes.SANDBOX]
    assert all(s.tmpfs == {"/usr/share/elasticsearch/data": "size=64m,mode=1777"} for s in nodes)
    assert not any(v.endswith("-data") for s in nodes for v in s.volumes)
