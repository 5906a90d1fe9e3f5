"""Benchmark ``nodes`` (``--only nodes``): the full-site recovery on a 1-node and on a 3-node
local stack at the same data size, in one run.

Both stacks are this benchmark's own (their own names, ports and work dirs, each node with the
stack settings' heap), started one after the other and always stopped with ``down(purge=True)``.
Each round is one full-site drill per stack through drdrill's Python API
(:func:`bench.drills.run_drill`: seed, nightly backup, site loss, redeploy, metadata restore,
snapshot restore, verify), alternating 1 3, 3 1, 1 3 … so that the machine's load falls on both
alike. The seeded indices' replicas are the drill's default (``[data] replicas`` unset:
min(1, data nodes − 1)): none on one node, one per shard on three, where the RTO then includes
rebuilding every replica (the timeline's restore-replicas phase).

Per round and as medians per node count: RTO, the restore-snapshots phase and its two parts
(restore-primaries, restore-replicas), restore throughput (the snapshot's bytes in the store per
second of restore-snapshots; the bytes Elasticsearch recovered from the snapshot per second of
restore-primaries; the replicas' peer-recovered bytes per second of restore-replicas), the
replica phase's share of the RTO, the 3-node / 1-node ratios, the heap each node was given and
the resident memory of all Elasticsearch processes after the drill.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psutil

from bench.common import MIB, fmt, median, mib_per_s, progress, ratio, table
from bench.context import Bench
from bench.drills import DrillResult, DrillShape, run_drill
from drdrill.settings import load_paths, stack_settings_from_env
from drdrill.targets.local.stack import LocalStack
from drdrill.targets.stack_target import StackDrillTarget

NODE_COUNTS = (1, 3)
# Two tenants of two indices: four data shards (and two canaries) to spread over three nodes.
TENANTS, INDICES = 2, 2
# Documents per index (--nodes-docs overrides). Chosen so that the restore phase is several
# seconds on one node while the whole benchmark (two stacks started, 2 × --repeat drills, each
# seeding afresh) stays near ten minutes on a 2-core machine; the bytes are measured, not assumed.
DEFAULT_DOCS = 100_000
SMOKE_DOCS = 200
PHASES = ("deploy-services", "restore-metadata", "restore-snapshots", "restore-primaries", "restore-replicas",
          "verify")
# Elasticsearch's recovery types: primaries come from the snapshot, replicas from their primary.
FROM_SNAPSHOT, FROM_PEER = "SNAPSHOT", "PEER"


def shape_of(bench: Bench) -> DrillShape:
    docs = bench.options.nodes_docs or (SMOKE_DOCS if bench.options.smoke else DEFAULT_DOCS)
    return DrillShape(TENANTS, INDICES, docs)


@dataclass
class Arm:
    nodes: int
    stack: LocalStack
    target: StackDrillTarget | None = None
    up_s: float | None = None


def es_rss_mib(stack: LocalStack) -> list[float] | None:
    """Resident memory of each Elasticsearch node (its launcher and JVM), MiB; None when unread."""
    per_node = []
    for row in stack.status().get("services", []):
        if str(row["service"]).split("/", 1)[0] != "elasticsearch":
            continue
        try:
            leader = psutil.Process(int(row["pid"]))
            tree = [leader, *leader.children(recursive=True)]
            per_node.append(sum(p.memory_info().rss for p in tree) / MIB)
        except (psutil.Error, TypeError, ValueError):
            return None
    return per_node or None


def _start(nodes: int) -> Arm:
    settings = stack_settings_from_env(elasticsearch_nodes=nodes)  # the argument wins over DRDRILL_ES_NODES
    arm = Arm(nodes, LocalStack(load_paths(), settings, stack_name=f"bench-n{nodes}-{uuid.uuid4().hex[:6]}"))
    return arm


def _up(arm: Arm) -> None:
    progress(f"nodes: starting {arm.stack.stack_name} ({arm.nodes} node(s), {arm.stack.settings.es_heap_mb} MB heap "
             "each)")
    started = time.monotonic()
    arm.stack.up()
    arm.up_s = time.monotonic() - started
    # owned=False: the drills must not stop it; this benchmark does, at its end.
    arm.target = StackDrillTarget(arm.stack, owned=False)
    arm.target.start()
    progress(f"nodes: {arm.stack.stack_name} up in {arm.up_s:.1f}s")


def round_row(round_no: int, nodes: int, drill: DrillResult, rss: list[float] | None) -> dict[str, Any]:
    """One drill's figures (from its own timeline and restore results)."""
    phases = {p: drill.phases.get(p) for p in PHASES}
    restore_s, primaries_s = phases["restore-snapshots"], phases["restore-primaries"]
    replicas_s = phases["restore-replicas"] or 0.0  # no such phase without replicas
    primary_bytes = drill.recovered_bytes.get(FROM_SNAPSHOT, 0)
    replica_bytes = drill.recovered_bytes.get(FROM_PEER, 0)
    return {
        "round": round_no, "nodes": nodes, "ok": drill.ok, "problems": drill.problems[:3], "drill_id": drill.drill_id,
        "wall_s": drill.wall_s, "rto_s": drill.rto_s, "phases": phases, "replicas": drill.replicas,
        "docs": drill.shape.docs, "snapshot_bytes": drill.snapshot_bytes, "primary_bytes": primary_bytes,
        "replica_bytes": replica_bytes,
        "restore_mib_s": mib_per_s(drill.snapshot_bytes, restore_s) if restore_s else None,
        "primaries_mib_s": mib_per_s(primary_bytes, primaries_s) if primaries_s else None,
        "replicas_mib_s": mib_per_s(replica_bytes, replicas_s) if replica_bytes and replicas_s else None,
        "replica_share_of_rto": ratio(replicas_s, drill.rto_s),
        # The recovery once the services run again: starting a JVM per node (deploy-services)
        # dominates a small drill's RTO and is the part most sensitive to a loaded machine.
        "rto_after_deploy_s": (drill.rto_s - (phases["deploy-services"] or 0.0)) if drill.rto_s is not None else None,
        "es_rss_mib_per_node": rss, "es_rss_mib": sum(rss) if rss else None,
        "load_avg_after": os.getloadavg(),
    }


MEDIANS = ("rto_s", "rto_after_deploy_s", "restore_mib_s", "primaries_mib_s", "replicas_mib_s", "replica_share_of_rto",
           "es_rss_mib", "snapshot_bytes", "wall_s")
RATIOS = ("rto_s", "rto_after_deploy_s", *PHASES, "restore_mib_s", "primaries_mib_s", "es_rss_mib")


def summarise(rows: list[dict[str, Any]], arms: dict[int, Arm], heap_mb: int) -> dict[str, Any]:
    by_nodes: dict[str, Any] = {}
    for nodes, arm in arms.items():
        ok = [r for r in rows if r["nodes"] == nodes and r["ok"]]
        summary: dict[str, Any] = {"n": len(ok), "failed": sum(1 for r in rows if r["nodes"] == nodes and not r["ok"]),
                                   "stack_up_s": arm.up_s, "replicas": median([r["replicas"] for r in ok
                                                                               if r["replicas"] is not None])}
        for key in MEDIANS:
            summary[key] = median([r[key] for r in ok if r[key] is not None])
        summary["phases"] = {p: median([r["phases"][p] or 0.0 for r in ok]) for p in PHASES}
        by_nodes[str(nodes)] = summary
    one, three = by_nodes.get("1", {}), by_nodes.get("3", {})

    def value(side: dict[str, Any], key: str) -> float | None:
        return side.get("phases", {}).get(key) if key in PHASES else side.get(key)

    ratios = {key: ratio(value(three, key), value(one, key)) for key in RATIOS}
    complete = all(s["n"] for s in by_nodes.values()) and len(by_nodes) == len(NODE_COUNTS)
    status = "ok" if complete and not any(r for r in rows if not r["ok"]) else "failed"
    return {"status": status, "heap_mb_per_node": heap_mb, "by_nodes": by_nodes, "ratios_3_to_1": ratios,
            "runs": rows}


def measure(bench: Bench) -> dict[str, Any]:
    shape = shape_of(bench)
    arms = {n: _start(n) for n in NODE_COUNTS}
    heap_mb = arms[NODE_COUNTS[0]].stack.settings.es_heap_mb
    rows: list[dict[str, Any]] = []
    last_wall: dict[int, float] = {}
    try:
        for arm in arms.values():
            _up(arm)
        for round_no in range(1, bench.options.repeat + 1):
            order = NODE_COUNTS if round_no % 2 else tuple(reversed(NODE_COUNTS))  # 1 3, 3 1, …
            estimate = sum(last_wall.values()) if len(last_wall) == len(arms) else None
            if rows and not bench.budget.fits(estimate):
                progress(f"nodes: budget reached after {round_no - 1} round(s)")
                rows.append({"round": round_no, "nodes": None, "ok": True, **bench.budget.skipped(estimate)})
                break
            for nodes in order:
                arm = arms[nodes]
                assert arm.target is not None
                drill = run_drill(bench, shape, f"{nodes} node(s), round {round_no}", target=arm.target)
                last_wall[nodes] = drill.wall_s
                rows.append(round_row(round_no, nodes, drill, es_rss_mib(arm.stack)))
                row = rows[-1]
                progress(f"nodes: round {round_no}, {nodes} node(s): RTO {row['rto_s'] or float('nan'):.1f}s, "
                         f"restore {row['phases']['restore-snapshots'] or float('nan'):.1f}s "
                         f"(replicas {row['phases']['restore-replicas'] or 0.0:.1f}s), "
                         f"load {row['load_avg_after'][0]:.1f}")
    finally:
        for arm in arms.values():
            progress(f"nodes: stopping {arm.stack.stack_name} (purge)")
            arm.stack.down(purge=True)
    measured = [r for r in rows if r.get("nodes") is not None]
    result = summarise(measured, arms, heap_mb)
    result.update(shape=shape.describe(), docs=shape.docs, skipped=[r for r in rows if r.get("nodes") is None])
    return result


def render(result: dict[str, Any]) -> str:
    if "by_nodes" not in result:
        return f"nodes: {result.get('status')}: {result.get('error')}"
    runs = result["runs"]
    per_round = table(
        f"nodes: full-site recovery per round ({result['shape']}; {result['heap_mb_per_node']} MB heap per node)",
        ["round", "nodes", "replicas", "RTO s", "deploy s", "restore s", "primaries s", "replicas s", "MiB",
         "MiB/s", "replica share", "ES RSS MiB", "load", "ok"],
        [[r["round"], r["nodes"], r["replicas"], r["rto_s"], r["phases"]["deploy-services"],
          r["phases"]["restore-snapshots"], r["phases"]["restore-primaries"], r["phases"]["restore-replicas"],
          r["snapshot_bytes"] / MIB, r["restore_mib_s"], r["replica_share_of_rto"], r["es_rss_mib"],
          r["load_avg_after"][0], r["ok"]] for r in runs])
    one, three = result["by_nodes"].get("1", {}), result["by_nodes"].get("3", {})
    ratios = result["ratios_3_to_1"]

    def line(label: str, key: str, *, phase: bool = False, ratio_key: str | None = None) -> list[Any]:
        get = (lambda s: s.get("phases", {}).get(key)) if phase else (lambda s: s.get(key))
        return [label, get(one), get(three), ratios.get(ratio_key or key) if (ratio_key or key) in ratios else None]

    rows = [line("RTO s", "rto_s"),
            *[line(f"  {p} s", p, phase=True) for p in PHASES],
            line("RTO after deploy-services s", "rto_after_deploy_s"),
            line("restore MiB/s (snapshot bytes / restore-snapshots)", "restore_mib_s"),
            line("primaries MiB/s (ES bytes from snapshot / restore-primaries)", "primaries_mib_s"),
            line("replicas MiB/s (peer-recovered bytes / restore-replicas)", "replicas_mib_s"),
            line("replica phase share of RTO", "replica_share_of_rto"),
            line("snapshot MiB", "snapshot_bytes"),
            line("ES RSS MiB, all nodes, after the drill", "es_rss_mib"),
            line("stack up s (not in the RTO)", "stack_up_s"),
            ["drills (ok)", one.get("n"), three.get("n"), None]]
    for row in rows:
        if row[0] == "snapshot MiB":
            row[1:3] = [(v or 0) / MIB if v is not None else None for v in row[1:3]]
    replicas = [fmt(int(side["replicas"]) if side.get("replicas") is not None else None) for side in (one, three)]
    medians = table(f"nodes: medians, 1 node vs 3 nodes (replicas per shard {replicas[0]} vs {replicas[1]})",
                    ["", "1 node", "3 nodes", "3/1"], rows)
    skipped = f"\n   skipped: {result['skipped']}" if result.get("skipped") else ""
    return per_round + "\n\n" + medians + skipped
