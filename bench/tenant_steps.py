"""Benchmarks 7 and 8: what one tenant's restore costs, step by step, and the floor under it.

7. ``steps`` — one drill of 40 tenants × 1 index × 2,000 documents, backed up once; its
   snapshots restored again and again from that backup (the restored indices and repositories
   removed in between), alternating three ways: the runbook's procedure one tenant after
   another as drdrill did it before the parallel restore (a blocking ``_restore`` with
   ``wait_for_completion``, then ``_cluster/health`` green: :func:`restore_as_before`), and
   drdrill's restore at concurrency 1 and at the default. Per tenant, each step's seconds
   (the catalogue read from the store, the fetch of its repository, registering it, reading the
   snapshot, starting the restore, its primaries, its replicas, reading its recoveries back),
   the phase's wall time per tenant, and the cluster states Elasticsearch published meanwhile.
8. ``floor`` — the restore phase of 40 and 100 small tenants (1 index × 100 documents, the
   default concurrency) against the time Elasticsearch spent on cluster states meanwhile
   (``_nodes/stats/discovery``, as every drill records it): the floor a restore of many small
   tenants cannot go below, and how close to it drdrill gets.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from bench.common import median, progress, ratio, table
from bench.context import Bench
from bench.drills import DrillShape, new_drill
from bench.restore_polling import restore_tenants_polling
from drdrill.adapters.platform import Platform
from drdrill.backups import catalog, repo_sync
from drdrill.core.cluster_state import ClusterStateWork
from drdrill.drill.restore import restore_copies
from drdrill.drill.session import Drill
from drdrill.drill.snapshot_restore import STEPS, TenantRestoreJob, choose_snapshot
from drdrill.errors import DrdrillError, RestoreFailed
from drdrill.settings import DEFAULT_RESTORE_CONCURRENCY

STEPS_SHAPE = DrillShape(40, 1, 2000)
SMOKE_STEPS_SHAPE = DrillShape(3, 1, 100)
FLOOR_SHAPES = (DrillShape(40, 1, 100), DrillShape(100, 1, 100))
SMOKE_FLOOR_SHAPES = (DrillShape(3, 1, 100),)
# Before the parallel restore (blocking calls); the watcher before issue 24 (polling _cat/shards)
# and today's (waiting inside Elasticsearch), one tenant at a time and at the default concurrency.
ARMS = ("before", "polling 1", "now 1", f"polling {DEFAULT_RESTORE_CONCURRENCY}", f"now {DEFAULT_RESTORE_CONCURRENCY}")
# The procedure before the parallel restore had its own steps where drdrill's now has others.
BEFORE_STEPS = ("catalogue", "fetch", "register", "snapshot-info", "restore", "green", "recoveries")


def _clear(drill: Drill) -> None:
    """The restored indices, the restore repositories and the repository copies gone: the next
    restore starts as after a redeploy, from the same backup."""
    platform = drill.platform
    for tenant in drill.settings.tenants:
        platform.cluster.delete_indices(f"{tenant.index_prefix}*")
    for name in platform.cluster.repositories():
        if name.startswith("restore-"):
            platform.cluster.delete_repository(name)
    if platform.repo_root is not None:
        shutil.rmtree(restore_copies(platform.repo_root, drill.drill_id), ignore_errors=True)


def restore_as_before(platform: Platform, drill: Drill) -> tuple[list[dict[str, float]], float]:
    """The snapshot restore as drdrill did it before the parallel restore (git 2e9a658^): one
    tenant after another, each restore blocking until Elasticsearch says it is done, then a
    health wait for green, then its recoveries read. Returns each tenant's step seconds."""
    rows = []
    began = time.monotonic()
    for tenant in drill.settings.tenants:
        steps: dict[str, float] = {}
        done = _stepper(steps)
        chosen = choose_snapshot(catalog.tenant_snapshots(platform.store, tenant), tenant, None)
        done("catalogue")
        assert platform.repo_root is not None
        location = restore_copies(platform.repo_root, drill.drill_id) / tenant.org_id / tenant.namespace
        shutil.rmtree(location, ignore_errors=True)
        repo_sync.fetch(platform.store, tenant.repo_prefix, location, owner=repo_sync.owner_of(platform.repo_root))
        done("fetch")
        repository = f"restore-{tenant.org_id}.{tenant.namespace}"
        platform.cluster.register_fs_repository(repository, str(location), readonly=True)
        done("register")
        platform.cluster.snapshot(repository, chosen.name)
        done("snapshot-info")
        platform.cluster.restore(repository, chosen.name, list(chosen.indices), drill.settings.wait_budget_s)
        done("restore")
        green, health = platform.cluster.wait_for_green(list(chosen.indices), drill.settings.wait_budget_s)
        if not green:
            raise RestoreFailed(f"{tenant}: {health}")
        done("green")
        platform.cluster.recoveries(list(chosen.indices))
        done("recoveries")
        rows.append(steps)
    return rows, time.monotonic() - began


def _stepper(steps: dict[str, float]) -> Callable[[str], None]:
    """``done(name)``: the time since the previous step ended is step ``name``'s."""
    last = [time.monotonic()]

    def done(name: str) -> None:
        now = time.monotonic()
        steps[name], last[0] = now - last[0], now
    return done


def _recover(drill: Drill, arm: str) -> dict[str, Any]:
    """One restore of every tenant from the drill's backup, by ``arm``."""
    _clear(drill)
    cluster = drill.platform.cluster
    before = cluster.cluster_state_work()
    row: dict[str, Any] = {"arm": arm, "status": "ok"}
    try:
        if arm == "before":
            steps, wall = restore_as_before(drill.platform, drill)
            row.update(wall_s=wall, concurrency=1)
        else:
            concurrency = int(arm.rsplit(" ", 1)[1])
            if arm.startswith("polling"):
                run = restore_tenants_polling(drill.platform, [TenantRestoreJob(t) for t in drill.settings.tenants],
                                              drill.drill_id, drill.owners, timeout_s=drill.settings.wait_budget_s,
                                              concurrency=concurrency)
                if run.failed:
                    raise run.failed[0][1]
            else:
                drill.settings.restore_concurrency = concurrency
                drill.restore_snapshots()
                run = drill.restore_runs[-1]
            steps = [dict(r.steps) for r in run.restored]
            row.update(wall_s=run.seconds, concurrency=run.concurrency, primaries_s=run.primaries_seconds)
    except DrdrillError as exc:
        return row | {"status": "failed", "problem": exc.one_line()}
    work: ClusterStateWork = cluster.cluster_state_work() - before
    tenants = len(drill.settings.tenants)
    names = BEFORE_STEPS if arm == "before" else STEPS
    row.update(per_tenant_s=row["wall_s"] / tenants,
               steps={name: sum(s.get(name, 0.0) for s in steps) / tenants for name in names},
               cluster_states_per_tenant=work.states / tenants, cluster_state_s=work.seconds,
               cluster_state_s_per_tenant=work.seconds / tenants)
    # One after another the steps add up to the wall time; what they leave is the harness's own.
    row["unaccounted_per_tenant_s"] = row["per_tenant_s"] - sum(row["steps"].values())
    progress(f"steps: {arm}: {row['wall_s']:.1f}s ({row['per_tenant_s'] * 1000:.0f} ms/tenant), "
             f"{work.states} cluster states in {work.seconds:.1f}s")
    return row


def _backed_up(bench: Bench, shape: DrillShape, label: str) -> Drill:
    drill = new_drill(bench, shape, label)
    drill.prepare()
    drill.take_backup()
    drill.stop_canaries()
    return drill


def measure_steps(bench: Bench) -> dict[str, Any]:
    shape = SMOKE_STEPS_SHAPE if bench.options.smoke else STEPS_SHAPE
    drill = _backed_up(bench, shape, "restore steps")
    arms = ARMS
    rows: list[dict[str, Any]] = []
    try:
        for repeat in range(bench.options.repeat):
            for arm in arms if repeat % 2 == 0 else tuple(reversed(arms)):  # A B C, C B A, ...
                if rows and not bench.budget.fits(max(r.get("wall_s", 0.0) for r in rows) * 1.5):
                    progress("steps: budget reached")
                    break
                rows.append(_recover(drill, arm))
    finally:
        drill.platform.close()
    return summarise_steps(shape, arms, rows)


def summarise_steps(shape: DrillShape, arms: tuple[str, ...], rows: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for arm in arms:
        ok = [r for r in rows if r["arm"] == arm and r["status"] == "ok"]
        names = sorted({name for r in ok for name in r["steps"]}, key=lambda n: (n not in STEPS, STEPS.index(n)
                                                                                  if n in STEPS else 0, n))
        summary[arm] = {"n": len(ok), "wall_s": median([r["wall_s"] for r in ok]),
                        "per_tenant_s": median([r["per_tenant_s"] for r in ok]),
                        "steps": {n: median([r["steps"].get(n, 0.0) for r in ok]) for n in names},
                        "unaccounted_per_tenant_s": median([r["unaccounted_per_tenant_s"] for r in ok]),
                        "cluster_states_per_tenant": median([r["cluster_states_per_tenant"] for r in ok]),
                        "cluster_state_s_per_tenant": median([r["cluster_state_s_per_tenant"] for r in ok]),
                        # What the restore costs beyond Elasticsearch's cluster-state work: the
                        # part drdrill's waiting can win or lose, and the least sensitive to a
                        # loaded machine (where each state's publication slows everything).
                        "beyond_floor_per_tenant_s": median([r["per_tenant_s"] - r["cluster_state_s_per_tenant"]
                                                             for r in ok])}
    status = "ok" if all(summary[a]["n"] for a in arms) else "failed"
    return {"status": status, "shape": shape.__dict__, "arms": summary, "runs": rows,
            "ratio_now_1_to_before": ratio(summary["now 1"]["wall_s"], summary["before"]["wall_s"]),
            "ratio_now_1_to_polling_1": ratio(summary["now 1"]["wall_s"], summary["polling 1"]["wall_s"])}


def render_steps(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"7. restore steps: {result['status']} ({result.get('reason')})"
    arms = result["arms"]
    names = list(dict.fromkeys(n for arm in arms.values() for n in arm["steps"]))
    rows = [[step, *[(arm["steps"].get(step) or 0.0) * 1000 if step in arm["steps"] else None
                     for arm in arms.values()]] for step in names]
    rows += [["(not in a step)", *[arm["unaccounted_per_tenant_s"] * 1000 for arm in arms.values()]],
             ["wall time / tenant", *[arm["per_tenant_s"] * 1000 for arm in arms.values()]],
             ["cluster states / tenant", *[arm["cluster_states_per_tenant"] for arm in arms.values()]],
             ["cluster-state ms / tenant", *[arm["cluster_state_s_per_tenant"] * 1000 for arm in arms.values()]],
             ["beyond the floor ms / tenant", *[arm["beyond_floor_per_tenant_s"] * 1000 for arm in arms.values()]],
             ["restore phase s", *[arm["wall_s"] for arm in arms.values()]]]
    shape = result["shape"]
    title = (f"7. restore steps, ms per tenant ({shape['tenants']} tenants × {shape['indices']} index × "
             f"{shape['docs_per_index']} docs; one backup, restored alternately; medians of "
             f"{min(a['n'] for a in arms.values())})")
    note = ("\n   before: the procedure before the parallel restore (blocking _restore, then health green); "
            "polling N: the watcher before issue 24 (_cat/shards every 50 ms) at concurrency N; now N: today's "
            "(waits inside Elasticsearch); steps of tenants side by side overlap at N > 1")
    return table(title, ["step", *arms], rows) + note


def measure_floor(bench: Bench) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for shape in SMOKE_FLOOR_SHAPES if bench.options.smoke else FLOOR_SHAPES:
        estimate = max((r["wall_s"] * shape.tenants / r["tenants"] for r in rows), default=None)
        if estimate is not None and not bench.budget.fits(estimate):
            rows.append({"tenants": shape.tenants, **bench.budget.skipped(estimate)})
            continue
        started = time.monotonic()
        drill = _backed_up(bench, shape, f"floor {shape.tenants}")
        try:
            for _ in range(bench.options.repeat if shape.tenants <= 40 else 1):
                _clear(drill)
                drill.restore_snapshots()
                run = drill.restore_runs[-1]
                work = run.cluster_states
                rows.append({"tenants": shape.tenants, "status": "ok", "restore_s": run.seconds,
                             "primaries_s": run.primaries_seconds,
                             "cluster_state_s": work.seconds if work else None,
                             "cluster_states": work.states if work else None,
                             "ratio": ratio(run.seconds, work.seconds if work else None),
                             "wall_s": time.monotonic() - started})
                progress(f"floor: {shape.tenants} tenants: restore {run.seconds:.1f}s, cluster states "
                         f"{work.seconds if work else float('nan'):.1f}s")
        except DrdrillError as exc:
            rows.append({"tenants": shape.tenants, "status": "failed", "problem": exc.one_line()})
        finally:
            drill.platform.close()
    by_size = {}
    for tenants in dict.fromkeys(r["tenants"] for r in rows):
        ok = [r for r in rows if r["tenants"] == tenants and r["status"] == "ok"]
        if ok:
            by_size[tenants] = {"n": len(ok), "restore_s": median([r["restore_s"] for r in ok]),
                                "cluster_state_s": median([r["cluster_state_s"] for r in ok
                                                           if r["cluster_state_s"] is not None]),
                                "cluster_states": median([r["cluster_states"] for r in ok
                                                          if r["cluster_states"] is not None])}
            by_size[tenants]["ratio"] = ratio(by_size[tenants]["restore_s"], by_size[tenants]["cluster_state_s"])
    return {"status": "ok" if by_size else "failed", "by_tenants": by_size, "runs": rows}


def render_floor(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"8. cluster-state floor: {result['status']}"
    rows = [[tenants, v["n"], v["restore_s"], v["cluster_state_s"], v["cluster_states"],
             (v["cluster_states"] or 0) / int(tenants), v["ratio"]] for tenants, v in result["by_tenants"].items()]
    return table("8. the restore phase against the cluster-state floor (1 index × 100 docs per tenant, "
                 f"concurrency {DEFAULT_RESTORE_CONCURRENCY}; medians)",
                 ["tenants", "n", "restore s", "cluster-state s", "states", "states/tenant", "restore / floor"],
                 rows)
