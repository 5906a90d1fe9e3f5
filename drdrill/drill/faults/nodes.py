"""Faults a multi-node recovery meets (issue 24, item 3): one Elasticsearch node of several
lost while the snapshots are restored. The node is chosen from what the cluster itself says
(its nodes, its elected master, where shards are recovering), then killed outright."""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from drdrill.errors import UsageError

if TYPE_CHECKING:
    from drdrill.drill.session import Drill

log = logging.getLogger(__name__)

# How long the fault watches for primaries being restored before striking anyway.
WATCH_S = 60.0


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


def data_node_killed_during_restore(drill: Drill) -> None:
    """Armed: kills one data node (not the master) shortly after the snapshot restore began."""
    nodes = _cluster_nodes(drill)
    if len(nodes) < 2:
        raise UsageError(f"a node loss needs a cluster: this one has {len(nodes)} node",
                         hint="[stack] elasticsearch_nodes = 3 in drdrill.toml (or DRDRILL_ES_NODES=3)")
    address = drill.platform.cluster.url.removeprefix("http://").removeprefix("https://")

    def kill() -> None:
        # Strike while a spare node restores primaries (the restore's first seconds fetch the
        # repository; a node lost then is lost before the restore, not during it).
        deadline = time.monotonic() + WATCH_S
        recovering: list[str] = []
        try:
            while time.monotonic() < deadline:
                nodes = _cluster_nodes(drill)
                recovering = _recovering_on(drill)
                victim = data_node_to_lose(nodes, address, recovering)
                if victim in recovering:
                    break
                time.sleep(0.1)
        except Exception as exc:  # a fault that cannot strike must say so, not pass silently
            log.error("the node-loss fault could not choose a node: %s", exc)
            drill.notes["node_fault"] = {"injected": False, "why": str(exc)}
            return
        log.info("fault: killing Elasticsearch node %s during the restore (%s)", victim,
                 "restoring primaries" if victim in recovering else "no primary seen recovering on it")
        drill.target.signal_service(f"elasticsearch/{victim}", signal.SIGKILL)
        drill.notes["node_fault"] = {"injected": True, "killed": victim,
                                     "while_restoring_primaries": victim in recovering}

    def strike() -> None:
        threading.Thread(target=kill, name="node-fault", daemon=True).start()
    drill.arm("restore-snapshots", strike)
