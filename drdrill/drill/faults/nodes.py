"""Faults a multi-node recovery meets (issue 24, item 3), struck while the snapshots are
restored: a data node lost, a data node restarted on its own data, the elected master lost.
The node is chosen from what the cluster itself says (its nodes, its elected master, where
primaries are being restored), never by a name the drill assumes."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from drdrill.errors import UsageError
from drdrill.targets.base import RestartsNodes

if TYPE_CHECKING:
    from drdrill.drill.session import Drill

log = logging.getLogger(__name__)

# How long a fault watches for primaries being restored before striking anyway.
WATCH_S = 60.0
# How long the master fault waits for the cluster to answer with a new master.
ELECTION_WAIT_S = 120.0
# How long verification waits for a restarted node's return (its own readiness wait is bounded).
RESTART_WAIT_S = 600.0


def _cluster_nodes(drill: Drill) -> list[dict[str, Any]]:
    client = drill.platform.cluster.client
    return list(client.cat.nodes(format="json", h="name,master,http_address").body)


def _recovering_on(drill: Drill) -> list[str]:
    """Nodes holding a primary that is still initialising (being restored), most first."""
    shards = cast(list[dict[str, Any]],
                  drill.platform.cluster.client.cat.shards(format="json", h="prirep,state,node").body)
    counts: dict[str, int] = {}
    for shard in shards:
        if shard.get("prirep") == "p" and shard.get("state") == "INITIALIZING" and shard.get("node"):
            counts[shard["node"]] = counts.get(shard["node"], 0) + 1
    return sorted(counts, key=lambda n: -counts[n])


def data_node_to_lose(nodes: list[dict[str, Any]], client_address: str, recovering: list[str]) -> str:
    """A node that is neither the elected master nor the one the drill's client talks to,
    preferring one whose primaries are being restored: losing it is a data node's loss only."""
    spare = [n["name"] for n in nodes if n.get("master") != "*" and n.get("http_address") != client_address]
    if not spare:
        raise UsageError("no data node to lose: every node is the master or the drill's own endpoint",
                         hint="run the drill on a cluster of 3 nodes ([stack] elasticsearch_nodes = 3)")
    return next((name for name in recovering if name in spare), spare[0])


def master_to_lose(nodes: list[dict[str, Any]], client_address: str, recovering: list[str]) -> str:
    """The elected master, whichever node it is (the drill's own endpoint included: its client
    then fails over to the others, as a platform's clients do)."""
    del client_address, recovering
    master = [n["name"] for n in nodes if n.get("master") == "*"]
    if not master:
        raise UsageError("the cluster has no elected master to lose", hint="is the cluster formed?")
    return master[0]


Choose = Callable[[list[dict[str, Any]], str, list[str]], str]


def _needs_a_cluster(drill: Drill) -> None:
    nodes = _cluster_nodes(drill)
    if len(nodes) < 3:
        raise UsageError(f"a node fault needs a cluster of 3 nodes: this one has {len(nodes)}",
                         hint="[stack] elasticsearch_nodes = 3 in drdrill.toml (or DRDRILL_ES_NODES=3)")


def _arm_node_fault(drill: Drill, note: str, choose: Choose, strike: Callable[[str], dict[str, Any]], *,
                    wait_for_victim: bool = True) -> None:
    """Armed for the snapshot restore: a thread watches (up to WATCH_S) until primaries are
    being restored (``wait_for_victim``: on the node chosen), chooses its node then, and
    strikes. What it did (or why it could not) is recorded under ``note``: a fault that cannot
    strike says so rather than pass silently."""
    _needs_a_cluster(drill)
    address = drill.platform.cluster.url.removeprefix("http://").removeprefix("https://")

    def watch_and_strike() -> None:
        deadline = time.monotonic() + WATCH_S
        recovering: list[str] = []
        try:
            # The restore's first seconds fetch and register the repository: a node lost then
            # is lost before the restore, not during it.
            while True:
                nodes = _cluster_nodes(drill)
                recovering = _recovering_on(drill)
                victim = choose(nodes, address, recovering)
                if (victim in recovering if wait_for_victim else bool(recovering)) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            log.info("fault (%s): striking Elasticsearch node %s during the restore (%s)", note, victim,
                     "restoring primaries" if victim in recovering else "no primary seen recovering on it")
            drill.notes[note] = {"injected": True, "node": victim, "while_restoring_primaries": victim in recovering}
            drill.notes[note].update(strike(victim))
        except Exception as exc:  # recorded, and the drill's own checks then judge the restore
            log.error("the %s fault could not strike: %s", note, exc)
            drill.notes.setdefault(note, {"injected": False})["why"] = str(exc)

    thread = threading.Thread(target=watch_and_strike, name=note, daemon=True)
    drill.arm("restore-snapshots", thread.start)

    def struck() -> None:
        # The data is verified on the whole cluster, after the fault has run its course (a node
        # restarted has rejoined or failed to): never while it is still striking.
        thread.join(WATCH_S + ELECTION_WAIT_S + RESTART_WAIT_S)
        if thread.is_alive():
            drill.notes.setdefault(note, {"injected": False})["why"] = "still striking when the data was verified"
    drill.arm("verify", struck)


def data_node_killed_during_restore(drill: Drill) -> None:
    """Armed: kills one data node (not the master) while it restores primaries."""
    def kill(node: str) -> dict[str, Any]:
        drill.target.signal_service(f"elasticsearch/{node}", signal.SIGKILL)
        return {"killed": node}
    _arm_node_fault(drill, "node_fault", data_node_to_lose, kill)


def data_node_restarted_during_restore(drill: Drill) -> None:
    """Armed: one data node (not the master) crashes while it restores primaries and is started
    again at once on its own data, as a supervisor would; the note records when it rejoined."""
    target = drill.target
    if not isinstance(target, RestartsNodes):
        raise UsageError(f"the {target.name} target cannot restart one Elasticsearch node",
                         hint="drill a node restart on the local target ([stack] elasticsearch_nodes = 3)")

    def restart(node: str) -> dict[str, Any]:
        return {"restarted": node, "rejoined_after_seconds": round(target.restart_node(node), 3)}
    _arm_node_fault(drill, "node_restart", data_node_to_lose, restart)


def master_killed_during_restore(drill: Drill) -> None:
    """Armed: kills the elected master while primaries are restored. The cluster elects another
    among the nodes left; the note records which, and how long the cluster had no master (the
    extra time the drill's RTO carries)."""
    def kill(node: str) -> dict[str, Any]:
        killed_at = time.monotonic()
        drill.target.signal_service(f"elasticsearch/{node}", signal.SIGKILL)
        elected, seconds = _new_master(drill, node, killed_at)
        return {"killed": node, "new_master": elected, "without_master_seconds": round(seconds, 3)}
    _arm_node_fault(drill, "master_fault", master_to_lose, kill, wait_for_victim=False)


def _new_master(drill: Drill, old: str, since: float) -> tuple[str | None, float]:
    """Which node the cluster elected after ``old``, and when (asked of the nodes left through
    the drill's client, which fails over); None if none answered within ELECTION_WAIT_S."""
    client = drill.platform.cluster.client.options(request_timeout=5)
    while time.monotonic() - since < ELECTION_WAIT_S:
        try:
            rows = cast(list[dict[str, Any]], client.cat.master(format="json").body)
            name = str(rows[0].get("node")) if rows else None
            if name and name != old:
                return name, time.monotonic() - since
        except Exception as exc:  # no master yet (503), or the killed node was asked: ask again
            log.debug("no new master yet: %s", exc)
        time.sleep(0.1)
    return None, time.monotonic() - since
