"""A cluster, not a node (issue 24, item 1): how many nodes, and how each finds the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from drdrill.drill.faults.nodes import data_node_to_lose, master_to_lose
from drdrill.errors import ConfigError, UsageError
from drdrill.provision.java import JavaRuntime
from drdrill.settings import (
    DrillSettings,
    StackSettings,
    settings_from_dict,
    stack_settings_from_env,
    with_drill_stack,
)
from drdrill.targets.services import ElasticsearchService


def _nodes(tmp_path: Path, count: int) -> list[ElasticsearchService]:
    java = JavaRuntime(home=Path("/jdk"), major=21, source="test")
    transport = [9301 + i for i in range(count)]
    return [ElasticsearchService(tmp_path, 9201 + i, None, home=Path("/es"), java=java, transport_port=transport[i],
                                 heap_mb=512, cluster_name="drdrill-s", index=i, transport_ports=transport)
            for i in range(count)]


def _settings(argv: list[str]) -> dict[str, str]:
    return dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("-E"))


def test_three_nodes_discover_each_other_on_loopback_and_share_one_repository(tmp_path):
    nodes = _nodes(tmp_path, 3)
    seen = [_settings(node.command()[0]) for node in nodes]
    assert [s["node.name"] for s in seen] == ["drdrill-es-0", "drdrill-es-1", "drdrill-es-2"]
    for s in seen:
        assert "discovery.type" not in s
        assert s["discovery.seed_hosts"] == "127.0.0.1:9301,127.0.0.1:9302,127.0.0.1:9303"
        assert s["cluster.initial_master_nodes"] == "drdrill-es-0,drdrill-es-1,drdrill-es-2"
        assert s["path.repo"] == str(tmp_path / "elasticsearch" / "repo")
        assert s["transport.host"] == s["http.host"] == "127.0.0.1"
    assert len({s["path.data"] for s in seen}) == 3  # a data path (and node.lock) each
    assert [n.node for n in nodes] == ["drdrill-es-0", "drdrill-es-1", "drdrill-es-2"]


def test_one_node_keeps_the_single_node_layout(tmp_path):
    (node,) = _nodes(tmp_path, 1)
    seen = _settings(node.command()[0])
    assert seen["discovery.type"] == "single-node" and seen["node.name"] == "drdrill-es"
    assert node.root == tmp_path / "elasticsearch" and node.node == ""


def test_node_count_from_the_drill_file_the_environment_and_its_bounds():
    drill = settings_from_dict({"stack": {"elasticsearch_nodes": 3}}, DrillSettings())
    assert drill.elasticsearch_nodes == 3
    assert with_drill_stack(StackSettings(), drill, {}).elasticsearch_nodes == 3
    assert with_drill_stack(StackSettings(), drill, {"DRDRILL_ES_NODES": "1"}).elasticsearch_nodes == 1
    assert with_drill_stack(StackSettings(), DrillSettings(), {}).elasticsearch_nodes == 1
    assert stack_settings_from_env({"DRDRILL_ES_NODES": "3"}).elasticsearch_nodes == 3
    for bad in (0, 10, True, "3"):
        with pytest.raises(ConfigError, match="elasticsearch_nodes"):
            settings_from_dict({"stack": {"elasticsearch_nodes": bad}}, DrillSettings())
    with pytest.raises(ConfigError, match="DRDRILL_ES_NODES"):
        stack_settings_from_env({"DRDRILL_ES_NODES": "three"})


def test_the_node_lost_is_a_data_node_restoring_primaries_never_the_master_or_the_endpoint():
    nodes = [{"name": "drdrill-es-0", "master": "-", "http_address": "127.0.0.1:9200"},
             {"name": "drdrill-es-1", "master": "*", "http_address": "127.0.0.1:9201"},
             {"name": "drdrill-es-2", "master": "-", "http_address": "127.0.0.1:9202"},
             {"name": "drdrill-es-3", "master": "-", "http_address": "127.0.0.1:9203"}]
    assert data_node_to_lose(nodes, "127.0.0.1:9200", ["drdrill-es-0", "drdrill-es-1", "drdrill-es-3"]) \
        == "drdrill-es-3"
    assert data_node_to_lose(nodes, "127.0.0.1:9200", []) == "drdrill-es-2"
    with pytest.raises(UsageError, match="no data node to lose"):
        data_node_to_lose(nodes[:2], "127.0.0.1:9200", [])


def test_the_master_lost_is_the_elected_one_even_when_it_is_the_drills_endpoint():
    nodes = [{"name": "drdrill-es-0", "master": "*", "http_address": "127.0.0.1:9200"},
             {"name": "drdrill-es-1", "master": "-", "http_address": "127.0.0.1:9201"}]
    assert master_to_lose(nodes, "127.0.0.1:9200", ["drdrill-es-1"]) == "drdrill-es-0"
    with pytest.raises(UsageError, match="no elected master"):
        master_to_lose([{**n, "master": "-"} for n in nodes], "127.0.0.1:9200", [])
