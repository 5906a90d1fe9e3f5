"""Benchmark 1, harness overhead: the default full-site drill (drdrill) against the same
recovery done as the runbook does it by hand (bench.manual), same data and stack, alternating
A B B A A B …; medians, the ratio of wall times and of RTOs, and where drdrill's extra time goes,
phase by phase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import median, progress, ratio, table
from bench.context import Bench
from bench.drills import DrillResult, DrillShape, run_drill
from bench.manual import ManualResult, run_manual
from drdrill.settings import DEFAULT_TENANTS, DataSpec

# The default full-site drill: features/full_site_recovery.feature and DrillSettings' defaults.
DEFAULT_SHAPE = DrillShape(len(DEFAULT_TENANTS), DataSpec().indices_per_tenant, DataSpec().docs_per_index)
SMOKE_SHAPE = DrillShape(1, 1, 100)

# What drdrill does in each phase beyond the by-hand script (read from drdrill's code; the
# numbers next to these come from the measurements).
WHY = {
    "prepare": "seeding is the same; + canary indices, canary rows and the canary writer thread",
    "backup": "the same nightly backup, but each snapshot also holds the tenant's canary index (one more index "
              "per tenant) while the canary writer keeps writing; + document-count and clash checks",
    "post-backup-wait": "canaries keep writing after the backup (DrillSettings.post_backup_s), so RPO > 0 is measured",
    "disaster": "+ stopping the canary writer (thread join) before killing the services",
    "deploy-services": "the same redeployment (runbook steps 1-2)",
    "restore-metadata": "+ checksum record check, SHA-256 of the ciphertext, decryption in Python instead of "
                        "openssl, end-of-dump check, DROP/CREATE DATABASE before psql",
    "restore-snapshots": "+ the canary index per tenant, reading the repository catalogue from MinIO, "
                         "tenant-ownership check, waiting for no initialising shards, per-shard recovery report",
    "verify": "+ row counts per tenant, index health and document counts, cross-store checks, canary searches "
              "in both stores (refresh + aggregation per tenant)",
    "measure": "after T_recovered: RPO queries (newest surviving canary per tenant and store)",
}
PHASES = list(WHY)


def _phases(run: DrillResult | ManualResult) -> dict[str, float]:
    phases = dict(run.phases)
    if isinstance(run, DrillResult):
        phases["post-backup-wait"] = run.post_backup_wait_s or 0.0
        phases["measure"] = run.measure_s or 0.0
    return phases


def _estimate(runs: list[Any]) -> float | None:
    walls = [r.wall_s for r in runs]
    return max(walls) * 1.1 if walls else None


def measure(bench: Bench) -> dict[str, Any]:
    shape = SMOKE_SHAPE if bench.options.smoke else DEFAULT_SHAPE
    arms: dict[str, list[Any]] = {"drdrill": [], "manual": []}
    skipped: list[dict[str, Any]] = []
    runners: dict[str, Callable[[Bench, DrillShape, str], DrillResult | ManualResult]] = {
        "drdrill": run_drill, "manual": run_manual}
    warmup = None
    if not bench.options.smoke:
        # The first drill after the stack starts is slower (cold caches, a JVM that has not run
        # a restore yet): run one untimed, so neither arm's first run pays for it.
        warmup = run_drill(bench, shape, "overhead warm-up (not counted)")
    for i in range(bench.options.repeat):
        # A B, B A, A B …: neither arm always runs on a machine the other just warmed up.
        order = ["drdrill", "manual"] if i % 2 == 0 else ["manual", "drdrill"]
        estimate = _estimate(arms["drdrill"] + arms["manual"])
        if i > 0 and not bench.budget.fits(2 * estimate if estimate else None):
            skipped.append({"repeat": i + 1, **bench.budget.skipped(2 * estimate if estimate else None)})
            progress(f"overhead: repeat {i + 1} skipped (budget)")
            continue
        for arm in order:
            run = runners[arm](bench, shape, f"overhead {arm} #{i + 1}")
            arms[arm].append(run)
            if isinstance(run, DrillResult) and run.ok:
                bench.drills.setdefault(shape, run)  # a later benchmark may reuse a drill of this shape
    result = summarise(shape, arms, skipped)
    result["warmup"] = warmup.to_dict() if warmup else None
    return result


def _stats(runs: list[Any]) -> dict[str, Any]:
    walls, rtos = [r.wall_s for r in runs], [r.rto_s for r in runs]
    recovery = [r.rto_s - _phases(r).get("deploy-services", 0.0) for r in runs]
    return {"n": len(runs), "wall_s": median(walls), "rto_s": median(rtos),
            "wall_range_s": [min(walls), max(walls)] if walls else None,
            "rto_range_s": [min(rtos), max(rtos)] if rtos else None,
            "rto_without_deploy_s": median(recovery)}


def summarise(shape: DrillShape, arms: dict[str, list[Any]], skipped: list[dict[str, Any]]) -> dict[str, Any]:
    ok = {arm: [r for r in runs if r.ok and r.rto_s is not None] for arm, runs in arms.items()}
    med = {arm: _stats(runs) for arm, runs in ok.items()}
    phases: list[dict[str, Any]] = []
    for name in PHASES:
        d = median([_phases(r).get(name, 0.0) for r in ok["drdrill"]])
        m = median([_phases(r).get(name, 0.0) for r in ok["manual"]])
        extra = None if d is None or m is None else d - m
        phases.append({"phase": name, "drdrill_s": d, "manual_s": m, "extra_s": extra, "why": WHY[name]})
    extra_total = None
    if med["drdrill"]["wall_s"] is not None and med["manual"]["wall_s"] is not None:
        extra_total = med["drdrill"]["wall_s"] - med["manual"]["wall_s"]
        # Medians of parts need not add up to the median of the whole; say how much is left over.
        attributed = sum(p["extra_s"] or 0.0 for p in phases)
        phases.append({"phase": "(not attributed)", "drdrill_s": None, "manual_s": None,
                       "extra_s": extra_total - attributed,
                       "why": "wall difference not in the phase medians: between phases, and medians of parts"})
    steps = sorted({s for r in ok["manual"] for s in r.steps})
    return {
        "status": "ok" if ok["drdrill"] and ok["manual"] else "failed",
        "shape": {**shape.__dict__, "docs": shape.docs},
        "median": med,
        "ratio_wall": ratio(med["drdrill"]["wall_s"], med["manual"]["wall_s"]),
        "ratio_rto": ratio(med["drdrill"]["rto_s"], med["manual"]["rto_s"]),
        # The redeployment is the same operation in both arms and dominates their RTO and its noise.
        "ratio_rto_without_deploy": ratio(med["drdrill"]["rto_without_deploy_s"],
                                          med["manual"]["rto_without_deploy_s"]),
        "extra_wall_s": extra_total,
        "phases": phases,
        "manual_steps_median_s": {s: median([r.steps.get(s, 0.0) for r in ok["manual"]]) for s in steps},
        "skipped": skipped,
        "runs": {arm: [r.to_dict() for r in runs] for arm, runs in arms.items()},
        "failures": {arm: [r.problems for r in runs if not r.ok] for arm, runs in arms.items()},
    }


def _range(values: list[float] | None) -> str | None:
    return f"{values[0]:.1f}-{values[1]:.1f}" if values else None


def render(result: dict[str, Any]) -> str:
    med = result["median"]
    rows: list[list[Any]] = [[arm, med[arm]["n"], med[arm]["wall_s"], _range(med[arm]["wall_range_s"]),
                              med[arm]["rto_s"], _range(med[arm]["rto_range_s"]), med[arm]["rto_without_deploy_s"]]
                             for arm in ("drdrill", "manual")]
    rows.append(["drdrill / by hand", None, result["ratio_wall"], None, result["ratio_rto"], None,
                 result["ratio_rto_without_deploy"]])
    head = table(
        f"1. Harness overhead: default full-site drill vs the runbook by hand "
        f"({result['shape']['tenants']} tenants × {result['shape']['indices']} indices × "
        f"{result['shape']['docs_per_index']} docs; medians, alternating runs)",
        ["arm", "n", "wall s", "range", "RTO s", "range", "RTO − redeploy s"], rows)
    phases = sorted(result["phases"], key=lambda p: -(p["extra_s"] or 0))
    where = table("   where drdrill's extra time goes (median s per phase; extra = drdrill − by hand)",
                  ["phase", "drdrill", "by hand", "extra", "what drdrill does more"],
                  [[p["phase"], p["drdrill_s"], p["manual_s"], p["extra_s"], p["why"]] for p in phases])
    return head + "\n" + where
