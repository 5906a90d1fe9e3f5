"""Benchmark 4, scale: drill cost as tenants grow (tiny data per tenant) and as data grows (one
tenant), each point a full-site drill. Reports how RTO and harness time (wall − RTO: seeding,
canaries, backup, measuring) grow, and fits ``time = a + b·n`` by least squares.

Points that would overrun the time budget are skipped and reported as skipped, never
estimated into the results: the estimate (from the points measured so far, e.g. the seeding
rate for the data series) only decides whether to run a point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import MIB, LinearFit, fit_linear, progress, table
from bench.context import Bench
from bench.drills import DrillResult, DrillShape, drill_for

TENANTS = (1, 10, 100, 1000)
DOCS = (10**4, 10**5, 10**6, 10**7)
LARGE_TENANTS = (1000,)
LARGE_DOCS = (10**7,)
DOCS_PER_TENANT = 100  # tenant series: 1 index × 100 documents per tenant
SMOKE_TENANTS = (1, 2)
SMOKE_DOCS = (100, 1000)
# Phases whose duration does not grow with the point (a drill with one more tenant redeploys
# the same services): the fixed part when only one point is known.
FIXED_PHASES = ("deploy-services", "disaster")
SAFETY = 1.25  # extrapolations are optimistic (merges, caches): skip rather than overrun the budget


@dataclass
class Series:
    name: str
    unit: str
    values: tuple[int, ...]

    def shape(self, n: int) -> DrillShape:
        return DrillShape(n, 1, DOCS_PER_TENANT) if self.name == "tenants" else DrillShape(1, 1, n)


def estimate_cost(done: list[tuple[int, DrillResult]], n: int) -> float | None:
    """Wall time a point of size ``n`` would take, extrapolated from the measured ones."""
    ok = [(x, r) for x, r in done if r.ok]
    if not ok:
        return None
    fit = fit_linear([float(x) for x, _ in ok], [r.wall_s for _, r in ok])
    if fit is not None and fit.slope > 0:
        return SAFETY * max(fit.predict(n), ok[-1][1].wall_s)
    x0, last = ok[-1]
    fixed = sum(last.phases.get(p, 0.0) for p in FIXED_PHASES) + (last.post_backup_wait_s or 0.0)
    return SAFETY * (fixed + max(0.0, last.wall_s - fixed) * n / x0)


def _point(x: int, result: DrillResult, series: Series) -> dict[str, Any]:
    prepare = result.phases.get("prepare")
    return {series.name: x, "status": "ok" if result.ok else "failed", "tenants": result.shape.tenants,
            "docs": result.shape.docs, "wall_s": result.wall_s, "rto_s": result.rto_s, "harness_s": result.harness_s,
            "snapshot_bytes": result.snapshot_bytes, "restored_bytes": result.restored_bytes,
            "restore_s": result.restore_s, "prepare_s": prepare,
            "seed_docs_per_s": result.shape.docs / prepare if prepare else None,
            "phases": result.phases, "problems": result.problems, "reused_by": result.reused_by}


def measure(bench: Bench) -> dict[str, Any]:
    smoke = bench.options.smoke
    return _measure(bench, [Series("tenants", "tenant", SMOKE_TENANTS if smoke else TENANTS),
                            Series("docs", "document", SMOKE_DOCS if smoke else DOCS)])


def measure_large(bench: Bench) -> dict[str, Any]:
    """Only the largest points (``--only scale-large``): a 1,000-tenant drill and a 10^7-document
    one, each run unless the budget given cannot hold the estimate."""
    smoke = bench.options.smoke
    return _measure(bench, [Series("tenants", "tenant", SMOKE_TENANTS[-1:] if smoke else LARGE_TENANTS),
                            Series("docs", "document", SMOKE_DOCS[-1:] if smoke else LARGE_DOCS)])


def _measure(bench: Bench, all_series: list[Series]) -> dict[str, Any]:
    done: dict[str, list[tuple[int, DrillResult]]] = {s.name: [] for s in all_series}
    skipped: dict[str, list[dict[str, Any]]] = {s.name: [] for s in all_series}
    pending = {s.name: list(s.values) for s in all_series}
    while any(pending.values()):
        # Cheapest next point first, so one series' big point cannot starve the other's small ones.
        candidates = [(estimate_cost(done[s.name], pending[s.name][0]), s) for s in all_series if pending[s.name]]
        estimate, series = min(candidates, key=lambda c: (c[0] is not None, c[0] or 0.0))
        n = pending[series.name].pop(0)
        if not bench.budget.fits(estimate):
            for m in [n, *pending[series.name]]:  # larger points cost more: skip them all
                guess = estimate_cost(done[series.name], m)
                skipped[series.name].append({series.name: m, **bench.budget.skipped(guess)})
                progress(f"scale: {series.name}={m} skipped (budget: estimated {guess or 0:.0f}s, "
                         f"{max(0.0, bench.budget.remaining()):.0f}s left)")
            pending[series.name] = []
            continue
        if estimate is not None:
            progress(f"scale: {series.name}={n}: estimated {estimate:.0f}s, {bench.budget.remaining():.0f}s left")
        result = drill_for(bench, series.shape(n), f"scale {series.name}={n}", benchmark="scale")
        done[series.name].append((n, result))
    return {"status": "ok" if any(r.ok for d in done.values() for _, r in d) else "failed",
            "series": {s.name: summarise(s, done[s.name], skipped[s.name]) for s in all_series}}


def _fits(series: Series, points: list[tuple[int, DrillResult]]) -> dict[str, LinearFit | None]:
    ok = [(x, r) for x, r in points if r.ok and r.rto_s is not None]
    xs = [float(x) for x, _ in ok]
    fits = {
        "rto_s": fit_linear(xs, [r.rto_s for _, r in ok], x=series.name, y="rto_s"),  # type: ignore[misc]
        "harness_s": fit_linear(xs, [r.harness_s for _, r in ok], x=series.name, y="harness_s"),  # type: ignore[misc]
        "wall_s": fit_linear(xs, [r.wall_s for _, r in ok], x=series.name, y="wall_s"),
    }
    if series.name == "docs":
        mib = [r.restored_bytes / MIB for _, r in ok]
        fits["rto_s_vs_restored_mib"] = fit_linear(mib, [r.rto_s for _, r in ok], x="restored_MiB", y="rto_s")  # type: ignore[misc]
    return fits


def summarise(series: Series, points: list[tuple[int, DrillResult]], skipped: list[dict[str, Any]]) -> dict[str, Any]:
    return {"unit": series.unit, "values": list(series.values),
            "points": sorted((_point(x, r, series) for x, r in points), key=lambda p: p[series.name]),
            "skipped": skipped,
            "models": {k: (f.to_dict() if f else None) for k, f in _fits(series, points).items()},
            "model": "least squares: time = intercept + slope · n"}


def render(result: dict[str, Any]) -> str:
    out = []
    for name, series in result["series"].items():
        rows = [[p["tenants"], p["docs"], p["snapshot_bytes"] / MIB, p["wall_s"], p["rto_s"], p["harness_s"],
                 p["seed_docs_per_s"], p["status"], ", ".join(p["reused_by"]) or None] for p in series["points"]]
        for s in series["skipped"]:
            shape = Series(name, "", ()).shape(s[name])
            rows.append([shape.tenants, shape.docs, None, None, None, None, None,
                         f"skipped: budget (est. {s['estimated_s'] or 0:.0f}s)", None])
        out.append(table(f"4. Scale with {name} (one full-site drill per point)",
                         ["tenants", "docs", "snapshot MiB", "wall s", "RTO s", "harness s", "seed docs/s",
                          "status", "drill reused by"], rows))
        for key, fit in series["models"].items():
            if fit:
                lf = LinearFit(**fit)
                unit = (1e6, "1e6 docs") if name == "docs" and key != "rto_s_vs_restored_mib" else (1.0, "")
                unit = (1.0, "MiB restored") if key == "rto_s_vs_restored_mib" else unit
                out.append(f"   model {lf.describe(*unit)}")
            else:
                out.append(f"   model {key}: not enough points")
    return "\n".join(out)
