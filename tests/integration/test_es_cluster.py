"""Elasticsearch as the platform runs it (issue 24): a cluster of nodes on the local target,
and a node that dies while starting says why (item 7)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.errors import ServiceNotReady
from drdrill.host import process
from drdrill.settings import stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

pytestmark = [pytest.mark.long, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NODES = 3
# Three JVMs on two cores beside the session's stacks: half the default heap (drdrill.toml's
# `make drill` cluster keeps the default, 1 GiB a node).
HEAP_MB = 512


@pytest.fixture(scope="module")
def cluster_stack(paths) -> Iterator[LocalStack]:
    settings = replace(stack_settings_from_env(), elasticsearch_nodes=NODES, es_heap_mb=HEAP_MB)
    stack = LocalStack(paths, settings, stack_name=f"pytest-cluster-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    started = time.monotonic()
    stack.up()
    print(f"\n{NODES}-node local stack up in {time.monotonic() - started:.1f}s")  # a figure, not a limit
    try:
        yield stack
    finally:
        records = stack._records(stack._read_state())
        stack.down(purge=True)
        assert not [r.key for r in records if process.members(r)], "down left a node running"


def _cat_nodes(url: str) -> list[dict[str, str]]:
    cluster = SearchCluster(url, request_timeout_s=10)
    try:
        return list(cluster.client.cat.nodes(format="json", h="name,master,heap.max"))  # type: ignore[arg-type]
    finally:
        cluster.close()


def test_three_nodes_form_one_cluster_and_stop_cleanly(cluster_stack):
    nodes = _cat_nodes(cluster_stack.endpoints().elasticsearch_url)
    assert sorted(n["name"] for n in nodes) == [f"drdrill-es-{i}" for i in range(NODES)]
    assert sum(n["master"] == "*" for n in nodes) == 1
    status = cluster_stack.status()
    assert status["up"], status
    es_rows = [r for r in status["services"] if r["service"].startswith("elasticsearch/")]
    assert len(es_rows) == NODES and all(r["healthy"] for r in es_rows)
    started = cluster_stack.nodes()
    assert len({n["port"] for n in started}) == len({n["transport_port"] for n in started}) == NODES
    rss = {r["service"]: sum(p.memory_info().rss for p in process.members(rec)) // 2**20
           for r, rec in zip(es_rows, [x for x in cluster_stack._records(cluster_stack._read_state())
                                       if x.service == "elasticsearch"], strict=True)}
    print(f"RSS per node (MB, heap {HEAP_MB} MB): {rss}")


def test_a_full_site_drill_with_replicas_on_the_cluster(cluster_stack, tmp_path):
    """The full-site drill on three nodes with a replica per shard: the site loss takes every
    node, the redeploy brings three back, and the drill passes."""
    (tmp_path / "drdrill.toml").write_text('[data]\ntenants = ["org1/ns1"]\nindices_per_tenant = 1\n'
                                           'docs_per_index = 200\nreplicas = 1\n')
    report_dir = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", "--stack", cluster_stack.stack_name,
                             str(ROOT / "features" / "full_site_recovery.feature"), "--report-dir", str(report_dir),
                             "--project-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "passed"
    assert len(_cat_nodes(cluster_stack.endpoints().elasticsearch_url)) == NODES  # redeployed as three


def test_a_node_that_dies_while_starting_names_its_cause(paths):
    """The port Elasticsearch must come back on (a redeploy keeps its address) is taken while
    it is down: the failure quotes Elasticsearch's own fatal error and who holds the port, and
    the logs that explain it outlive the failed start."""
    stack = LocalStack(paths, stack_settings_from_env(), stack_name=f"pytest-dies-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        stack.up()
        port = stack.nodes()[0]["port"]
        stack.signal_service("elasticsearch", signal.SIGKILL)
        with socket.socket() as held:
            deadline = time.monotonic() + 30
            while True:  # the killed node's socket goes with it, within moments
                try:
                    held.bind(("127.0.0.1", port))
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"port {port} never freed"
                    time.sleep(0.2)
            held.listen()
            with pytest.raises(ServiceNotReady) as failure:
                stack.redeploy(["elasticsearch"])
        message = str(failure.value)
        assert f"BindHttpException: Failed to bind to 127.0.0.1:{port}" in message, message
        assert "java.net.BindException: Address already in use" in message, message
        assert f"port {port} is held by pid {os.getpid()} (" in message, message
        assert "Elasticsearch died while starting up" in failure.value.log_tail
        assert "fatal exception while booting" in stack.log_tails()["elasticsearch"]
        stack.down()  # the state goes; the work directory's logs stay until a purge
        assert "fatal exception while booting" in stack.log_tails()["elasticsearch"]
    finally:
        stack.down(purge=True)


def test_nodes_lost_while_the_snapshots_are_restored(cluster_stack, tmp_path):
    """Issue 24 item 3, features/faults/nodes.feature on three nodes: a data node killed, a data
    node restarted on its data, the elected master killed, each while primaries are restored,
    beside the same recovery undisturbed. Each recovery ends green with every document (the
    restore goes on on the nodes left; an index whose only copy went with its node is restored
    again, and the report says so); each fault says what it struck; the extra time is measured
    against the baseline in the same run (printed: a figure, not a limit)."""
    (tmp_path / "drdrill.toml").write_text("[data]\nreplicas = 1\n")
    report_dir = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", "--stack", cluster_stack.stack_name,
                             str(ROOT / "features" / "faults" / "nodes.feature"), "--report-dir", str(report_dir),
                             "--project-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=1500)
    report = json.loads((report_dir / "report.json").read_text())
    notes = report["evidence"]["notes"]
    print(f"\nnode faults: {notes.get('node_fault')}; {notes.get('node_restart')}; {notes.get('master_fault')}")
    restore = {r["scenario"]: r for r in notes["restore"]}
    for name, settings in restore.items():
        print(f"  {name}: restore {settings['seconds']}s (primaries {settings['primaries_seconds']}s), "
              f"restored again: {settings.get('restored_again', {})}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["verdict"] == "passed"
    killed = notes["node_fault"]
    assert killed["injected"] and killed["killed"].startswith("drdrill-es-"), killed
    restarted = notes["node_restart"]
    assert restarted["injected"] and restarted["restarted"].startswith("drdrill-es-"), restarted
    assert restarted["rejoined_after_seconds"] > 0
    master = notes["master_fault"]
    assert master["injected"] and master["new_master"] not in (None, master["killed"]), master
    assert master["without_master_seconds"] > 0
    # Every index lost with its node is named where an auditor reads the report.
    again = [k for settings in restore.values() for k in settings.get("restored_again", {})]
    weaknesses = " ".join(w["summary"] for w in report.get("weaknesses", []))
    assert all(k.split()[-1] in weaknesses for k in again), (again, weaknesses)
    assert len(_cat_nodes(cluster_stack.endpoints().elasticsearch_url)) == NODES  # whole again afterwards
