"""Elasticsearch as a cluster on the containers target (issue 24 item 1): one container per
node, the nodes forming one real cluster, and the full-site drill on it with a replica per
shard. Figures (start-up time, memory per node, the drill's RTO) are printed, never asserted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from drdrill.adapters.docker_engine import DockerEngine
from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.host.readiness import wait_for
from drdrill.settings import stack_settings_from_env
from drdrill.targets.containers import es_nodes
from drdrill.targets.containers.specs import container_name
from drdrill.targets.containers.stack import ContainerStack

pytestmark = [pytest.mark.long, pytest.mark.integration, pytest.mark.slow, pytest.mark.containers]

ROOT = Path(__file__).resolve().parents[2]
NODES = 3
# Three JVMs on two cores beside the session's other stacks: half the default heap, as
# test_es_cluster gives the local target's cluster.
HEAP_MB = 512



@pytest.fixture(scope="module")
def cluster_stack(paths, engine) -> Iterator[ContainerStack]:
    settings = replace(stack_settings_from_env(), elasticsearch_nodes=NODES, es_heap_mb=HEAP_MB)
    stack = ContainerStack(paths, settings, stack_name=f"pytest-cc-{uuid.uuid4().hex[:6]}", engine=engine)
    started = time.monotonic()
    try:
        stack.up()
        print(f"\n{NODES}-node containers stack up in {time.monotonic() - started:.1f}s")  # a figure, not a limit
        yield stack
    finally:
        stack.down(purge=True)
        assert engine.labelled(stack.stack_name) == {"containers": [], "networks": [], "volumes": []}


def _cat_nodes(url: str) -> list[dict[str, str]]:
    cluster = SearchCluster(url, request_timeout_s=10)
    try:
        return list(cluster.client.cat.nodes(format="json", h="name,master,http_address"))  # type: ignore[arg-type]
    finally:
        cluster.close()


def _node_ids(stack: ContainerStack, engine: DockerEngine) -> list[str]:
    found = [engine.container(es_nodes.node_container(stack.stack_name, i)) for i in range(NODES)]
    return [c.id if c is not None else "missing" for c in found]


def test_one_container_per_node_forms_one_cluster(cluster_stack, engine):
    ep = cluster_stack.endpoints()
    assert len(ep.elasticsearch_nodes) == NODES and ep.elasticsearch_nodes[0] == ep.elasticsearch_url
    nodes = _cat_nodes(ep.elasticsearch_url)
    assert sorted(n["name"] for n in nodes) == [es_nodes.node_name(i) for i in range(NODES)]
    assert sum(n["master"] == "*" for n in nodes) == 1
    # Each node advertises where the host reaches it: the fault code matches the drill's endpoint.
    assert sorted(n["http_address"] for n in nodes) == sorted(u.removeprefix("http://") for u in ep.elasticsearch_nodes)
    # The containers carry the stack's name (never another stack's) and publish on loopback only.
    names = [es_nodes.node_container(cluster_stack.stack_name, i) for i in range(NODES)]
    assert all(cluster_stack.stack_name in name and engine.container(name) for name in names)
    sandbox = engine.container(container_name(cluster_stack.stack_name, es_nodes.SANDBOX))
    bindings = sandbox.attrs["HostConfig"]["PortBindings"]
    assert {b["HostIp"] for rows in bindings.values() for b in rows} == {"127.0.0.1"} and len(bindings) == NODES
    # Status probes each node with a short timeout: on a loaded machine one may miss it once.
    statuses = []

    def status_up() -> tuple[bool, str]:
        statuses.append(cluster_stack.status())
        return statuses[-1]["up"], str([(r["service"], r["detail"]) for r in statuses[-1]["services"]])

    wait_for("the stack's status", status_up, timeout_s=120, interval_s=2)
    es_rows = [r for r in statuses[-1]["services"] if r["service"].startswith("elasticsearch/")]
    assert len(es_rows) == NODES and all(r["healthy"] and r["running"] for r in es_rows)
    assert len({r["port"] for r in es_rows}) == NODES
    memory = {name: engine.container(name).stats(stream=False)["memory_stats"].get("usage", 0) // 2**20
              for name in names}
    print(f"memory per node container (MB, heap {HEAP_MB} MB): {memory}")
    # One node's container, not the others': a fault stops (or kills) exactly the node it names.
    one = f"elasticsearch/{es_nodes.node_name(2)}"
    cluster_stack.signal_service(one, signal.SIGSTOP)
    try:
        assert cluster_stack.process_state(one) == "stopped (paused)"
        assert cluster_stack.process_state(f"elasticsearch/{es_nodes.node_name(0)}") == "running"
        assert cluster_stack.process_state("elasticsearch") == "stopped (paused)"  # the worst of its nodes
    finally:
        cluster_stack.signal_service(one, signal.SIGCONT)
    assert cluster_stack.process_state("elasticsearch") == "running"
    # A node restarted on its own data (a supervisor's restart) rejoins the same cluster.
    def mounts() -> list[tuple[str, str]]:  # the engine lists them in no fixed order
        found = engine.container(names[1]).attrs["Mounts"]
        return sorted((m["Destination"], m.get("Name") or m["Source"]) for m in found)

    volume_before = mounts()
    rejoined = cluster_stack.restart_node(es_nodes.node_name(1))
    print(f"node {es_nodes.node_name(1)} rejoined {rejoined:.1f}s after its kill")
    assert mounts() == volume_before
    assert len(_cat_nodes(ep.elasticsearch_url)) == NODES
    assert set(cluster_stack.log_tails(5)) >= {f"elasticsearch.{es_nodes.node_name(i)}" for i in range(NODES)}


def test_the_full_site_drill_with_replicas_on_three_node_containers(cluster_stack, engine, tmp_path):
    """The site loss kills every node container and removes their data; the redeploy brings
    three back at the same addresses; the drill restores primaries, then replicas, and passes."""
    before = _node_ids(cluster_stack, engine)
    (tmp_path / "drdrill.toml").write_text('[data]\ntenants = ["org1/ns1", "org2/ns1"]\nindices_per_tenant = 1\n'
                                           'docs_per_index = 200\nreplicas = 1\n')
    report_dir = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", "--target", "containers",
                             "--stack", cluster_stack.stack_name, str(ROOT / "features" / "full_site_recovery.feature"),
                             "--report-dir", str(report_dir), "--project-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=1800, env=dict(os.environ))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "passed"
    phases = {p["name"]: p for p in report["phases"]}
    assert {"disaster", "restore-snapshots", "restore-primaries", "restore-replicas"} <= set(phases), list(phases)
    target = report["evidence"]["notes"]["target"]
    assert target["kind"] == "containers" and target["elasticsearch_nodes"] == NODES
    assert target["elasticsearch_heap_mb_per_node"] == HEAP_MB
    assert report["evidence"]["notes"]["restore"][0]["replicas"] == 1
    ep = cluster_stack.endpoints()
    assert len(_cat_nodes(ep.elasticsearch_url)) == NODES  # redeployed as three, at the same addresses
    after = _node_ids(cluster_stack, engine)
    assert not set(before) & set(after)  # every node's container was lost and replaced
    print(f"\nfull-site drill on {NODES} node containers: RTO {report['achieved']['rto_seconds']:.1f}s; "
          + ", ".join(f"{n} {phases[n]['duration_seconds']:.1f}s" for n in
                      ("deploy-services", "restore-snapshots", "restore-primaries", "restore-replicas") if n in phases))
