"""Benchmark 6, parallel restore: one 100-tenant drill (1 index × 100 documents each), backed up
once, then recovered again and again from that backup (site loss, redeploy, metadata,
snapshots, verification) with the tenants restored one after another and ``restore_concurrency``
at a time, alternating (A B B A …). Same data, same backup, same machine: the difference is the
concurrency. Reports RTO and the snapshot restore's wall time per arm (medians), their ratios,
and the restore phase's per-tenant slope (wall time / tenants) before and after; then, budget
permitting, one recovery each at other concurrencies, which is what the default rests on."""

from __future__ import annotations

import time
from typing import Any

from bench.common import median, progress, ratio, table
from bench.context import Bench
from bench.drills import DrillShape, new_drill
from drdrill.drill.session import Drill
from drdrill.errors import DrdrillError
from drdrill.settings import DEFAULT_RESTORE_CONCURRENCY

SHAPE = DrillShape(100, 1, 100)
SMOKE_SHAPE = DrillShape(4, 1, 100)
SWEEP = (2, 8)


def _recover(drill: Drill, concurrency: int) -> dict[str, Any]:
    """One recovery from the drill's backup, timed by the drill's own timeline."""
    drill.settings.restore_concurrency = concurrency
    started = time.monotonic()
    row: dict[str, Any] = {"concurrency": concurrency, "status": "ok"}
    try:
        drill.disaster("site loss")
        drill.deploy()
        drill.restore_metadata()
        drill.restore_snapshots()
        # What bounds the restore on one node: every cluster state is published (and fsynced).
        work = drill.restore_runs[-1].cluster_states
        row.update(cluster_states=work.states if work else None,
                   cluster_state_publication_s=work.seconds if work else None)
        drill.verify()
    except DrdrillError as exc:
        row.update(status="failed", problem=exc.one_line())
    window = drill.timeline.recovery_window()
    if row["status"] == "ok" and window is not None and window[1] is not None:
        row["rto_s"] = window[1].offset - window[0].offset
    row["restore_wall_s"] = drill.restore_runs[-1].seconds if drill.restore_runs else None
    row["wall_s"] = time.monotonic() - started
    tenants = len(drill.settings.tenants)
    if row["restore_wall_s"] is not None:
        row["restore_s_per_tenant"] = row["restore_wall_s"] / tenants
    progress(f"parallel: concurrency {concurrency}: RTO {row.get('rto_s') or float('nan'):.1f}s, "
             f"restore {row['restore_wall_s'] or float('nan'):.1f}s, {row['status']}")
    return row


def measure(bench: Bench) -> dict[str, Any]:
    shape = SMOKE_SHAPE if bench.options.smoke else SHAPE
    parallel = DEFAULT_RESTORE_CONCURRENCY
    drill = new_drill(bench, shape, "parallel restore")
    rows: list[dict[str, Any]] = []
    try:
        drill.prepare()
        drill.take_backup()
        drill.stop_canaries()
        order = [1, parallel, parallel, 1, 1, parallel][: 2 * bench.options.repeat]
        for number, concurrency in enumerate(order):
            costs = [r["wall_s"] for r in rows if r["concurrency"] == concurrency] or [r["wall_s"] for r in rows]
            if number >= 2 and not bench.budget.fits(max(costs) * 1.2):
                progress("parallel: budget reached")
                break
            rows.append(_recover(drill, concurrency))
        for concurrency in SWEEP if not bench.options.smoke else ():
            if not bench.budget.fits(max(r["wall_s"] for r in rows) * 1.2):
                break
            rows.append(_recover(drill, concurrency) | {"sweep": True})
    except DrdrillError as exc:
        return {"status": "failed", "reason": exc.one_line(), "recoveries": rows}
    finally:
        drill.stop_canaries()
        drill.platform.close()
    return summarise(shape, parallel, rows)


def summarise(shape: DrillShape, parallel: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    arms: dict[str, dict[str, Any]] = {}
    for name, concurrency in (("sequential", 1), ("parallel", parallel)):
        ok = [r for r in rows if r["concurrency"] == concurrency and r["status"] == "ok" and not r.get("sweep")]
        arms[name] = {"concurrency": concurrency, "n": len(ok),
                      "rto_s": median([r["rto_s"] for r in ok]),
                      "restore_wall_s": median([r["restore_wall_s"] for r in ok]),
                      "restore_s_per_tenant": median([r["restore_s_per_tenant"] for r in ok]),
                      "cluster_states_per_tenant": median([r["cluster_states"] / shape.tenants for r in ok
                                                                  if r["cluster_states"] is not None]),
                      "cluster_state_publication_s": median([r["cluster_state_publication_s"] for r in ok
                                                             if r["cluster_state_publication_s"] is not None]),
                      "rto_range": [min((r["rto_s"] for r in ok), default=None),
                                    max((r["rto_s"] for r in ok), default=None)]}
    sweep = {r["concurrency"]: r for r in rows if r["status"] == "ok"}
    status = "ok" if arms["sequential"]["n"] and arms["parallel"]["n"] else "failed"
    return {"status": status, "tenants": shape.tenants, "shape": shape.__dict__, "arms": arms,
            "ratio_rto": ratio(arms["parallel"]["rto_s"], arms["sequential"]["rto_s"]),
            "ratio_restore": ratio(arms["parallel"]["restore_wall_s"], arms["sequential"]["restore_wall_s"]),
            "by_concurrency": {c: {"rto_s": r.get("rto_s"), "restore_wall_s": r["restore_wall_s"]}
                               for c, r in sorted(sweep.items())},
            "recoveries": rows}


def render(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"6. parallel restore: {result['status']} ({result.get('reason')})"
    rows = [[name, arm["concurrency"], arm["n"], arm["rto_s"], arm["restore_wall_s"], arm["restore_s_per_tenant"],
             arm["cluster_states_per_tenant"], arm["cluster_state_publication_s"]]
            for name, arm in result["arms"].items()]
    out = table(f"6. parallel restore ({result['tenants']} tenants, one backup, recovered alternately; medians)",
                ["", "concurrency", "n", "RTO s", "restore s", "restore s/tenant", "cluster states/tenant",
                 "cluster-state s"], rows)
    sweep = ", ".join(f"{c}: restore {v['restore_wall_s']:.1f}s" for c, v in result["by_concurrency"].items()
                      if v["restore_wall_s"] is not None)
    return out + (f"\n   RTO parallel/sequential {result['ratio_rto']:.2f}, restore phase "
                  f"{result['ratio_restore']:.2f}; by concurrency: {sweep}")
