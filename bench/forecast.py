"""Benchmark 5, RTO forecast: from drills on a sample, predict the RTO of a 10× larger dataset
with drdrill.core.objectives.forecast_rto (fixed part = sample RTO − sample restore time,
per-byte rate from the sample; medians over the sample drills), then run the larger drills and
report the forecast error.

Each forecast is made after the larger drill's backup and before its disaster: the backup's size
(snapshots + the whole-database dump) is what an operator knows about production before a
drill. Nothing measured on a larger drill's recovery enters its forecast."""

from __future__ import annotations

from typing import Any

from bench.common import MIB, median, progress, ratio, table
from bench.context import Bench
from bench.drills import DrillResult, DrillShape, drill_for, run_drill
from drdrill.core import layout
from drdrill.core.objectives import forecast_rto
from drdrill.drill.session import Drill

SAMPLE = DrillShape(1, 1, 10**5)
FACTOR = 10
SMOKE_SAMPLE = DrillShape(1, 1, 100)


def model(samples: list[DrillResult]) -> dict[str, Any]:
    """What the forecast knows: medians over the sample drills."""
    restore = median([s.restore_s for s in samples])
    nbytes = median([float(s.restored_bytes) for s in samples])
    fixed = median([max(0.0, (s.rto_s or 0.0) - s.restore_s) for s in samples])
    assert restore is not None and nbytes is not None and fixed is not None
    return {"n": len(samples), "sample_bytes": int(nbytes), "sample_restore_s": restore, "fixed_s": fixed,
            "per_mib_s": restore / (nbytes / MIB), "sample_rto_s": median([s.rto_s or 0.0 for s in samples])}


def predict(fit: dict[str, Any], target_bytes: int) -> float:
    return forecast_rto(fit["sample_bytes"], fit["sample_restore_s"], fit["fixed_s"], target_bytes)


def backup_bytes(drill: Drill) -> int:
    assert drill.backup is not None
    return sum(s.size_bytes for s in drill.backup.snapshots) + \
        sum(m.size_bytes for m in drill.backup.metadata if m.scope == layout.ALL_SCOPE)


def _samples(bench: Bench, shape: DrillShape) -> list[DrillResult]:
    """The sample drills: one measured earlier in the run may count, then fresh ones up to --repeat."""
    samples = [drill_for(bench, shape, "forecast sample #1", benchmark="forecast")]
    while not bench.options.smoke and len(samples) < bench.options.repeat:
        if not bench.budget.fits(max(s.wall_s for s in samples) * 1.2):
            break
        samples.append(run_drill(bench, shape, f"forecast sample #{len(samples) + 1}"))
    return [s for s in samples if s.ok and s.rto_s is not None]


def _target(bench: Bench, fit: dict[str, Any], shape: DrillShape, number: int) -> dict[str, Any]:
    """One larger drill, forecast between its backup and its disaster."""
    forecast: dict[str, Any] = {}

    def make_forecast(drill: Drill) -> None:
        forecast["target_bytes"] = backup_bytes(drill)
        forecast["predicted_rto_s"] = predict(fit, forecast["target_bytes"])
        progress(f"forecast: predicted RTO {forecast['predicted_rto_s']:.1f}s for "
                 f"{forecast['target_bytes'] / MIB:.1f} MiB (from the sample), now running it")

    result = run_drill(bench, shape, f"forecast target ×{FACTOR} #{number}", after_backup=make_forecast)
    bench.drills.setdefault(shape, result)
    return _row(result, forecast, reused=False)


def _row(result: DrillResult, forecast: dict[str, Any], *, reused: bool) -> dict[str, Any]:
    ok = result.ok and result.rto_s is not None and "predicted_rto_s" in forecast
    row = {"status": "ok" if ok else "failed", "reused": reused, **forecast, "actual_rto_s": result.rto_s,
           "restored_bytes": result.restored_bytes, "restore_s": result.restore_s, "wall_s": result.wall_s,
           "phases": result.phases, "problems": result.problems}
    if ok:
        row["fixed_s"] = result.rto_s - result.restore_s  # type: ignore[operator]
        row["relative_error"] = (forecast["predicted_rto_s"] - result.rto_s) / result.rto_s
    return row


def _targets(bench: Bench, fit: dict[str, Any], shape: DrillShape, sample_wall: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    known = bench.drills.get(shape)
    while not bench.options.smoke and len(rows) < bench.options.repeat:
        walls = [r["wall_s"] for r in rows] or ([known.wall_s] if known else [sample_wall * FACTOR])
        if not bench.budget.fits(max(walls) * 1.2):
            break
        rows.append(_target(bench, fit, shape, len(rows) + 1))
    if not rows and known is not None and known.ok:  # smoke, or no time for a fresh one: reuse, flagged
        drill_for(bench, shape, f"forecast target ×{FACTOR}", benchmark="forecast")
        rows.append(_row(known, {"target_bytes": known.restored_bytes,
                                 "predicted_rto_s": predict(fit, known.restored_bytes)}, reused=True))
    elif not rows and bench.options.smoke:
        rows.append(_target(bench, fit, shape, 1))
    return rows


def measure(bench: Bench) -> dict[str, Any]:
    sample_shape = SMOKE_SAMPLE if bench.options.smoke else SAMPLE
    target_shape = DrillShape(sample_shape.tenants, sample_shape.indices, sample_shape.docs_per_index * FACTOR)
    samples = _samples(bench, sample_shape)
    if not samples:
        return {"status": "failed", "reason": "no sample drill succeeded"}
    fit = model(samples)
    base = {"sample_shape": sample_shape.__dict__, "target_shape": target_shape.__dict__, "factor_docs": FACTOR,
            "model": fit, "samples": [s.to_dict() for s in samples]}
    rows = _targets(bench, fit, target_shape, max(s.wall_s for s in samples))
    good = [r for r in rows if r["status"] == "ok"]
    if not good:
        return {"status": "failed" if rows else "skipped", "reason": "budget" if not rows else "target drill failed",
                **base, "targets": rows}
    predicted, actual = median([r["predicted_rto_s"] for r in good]), median([r["actual_rto_s"] for r in good])
    assert predicted is not None and actual is not None
    errors = [r["relative_error"] for r in good]
    return {"status": "ok", **base, "targets": rows,
            "predicted_rto_s": predicted, "actual_rto_s": actual,
            "relative_error": (predicted - actual) / actual, "abs_relative_error": abs(predicted - actual) / actual,
            "relative_error_range": [min(errors), max(errors)],
            # The naive forecast "the RTO stays what the sample showed", for comparison.
            "naive_relative_error": (fit["sample_rto_s"] - actual) / actual,
            "bytes_ratio": ratio(median([r["restored_bytes"] for r in good]), fit["sample_bytes"])}


def render(result: dict[str, Any]) -> str:
    if result["status"] != "ok":
        return f"5. RTO forecast: {result['status']} ({result.get('reason')})"
    fit, good = result["model"], [t for t in result["targets"] if t["status"] == "ok"]
    rows: list[list[Any]] = [["sample (measured)", fit["n"], result["sample_shape"]["docs_per_index"],
                              fit["sample_bytes"] / MIB, fit["sample_rto_s"], fit["sample_restore_s"], fit["fixed_s"],
                              None]]
    for i, t in enumerate(good, 1):
        tag = " (reused)" if t["reused"] else ""
        docs = result["target_shape"]["docs_per_index"]
        predicted = t["predicted_rto_s"]
        rows.append([f"larger #{i}: forecast{tag}", 1, docs, t["target_bytes"] / MIB, predicted,
                     predicted - fit["fixed_s"], fit["fixed_s"], None])
        rows.append([f"larger #{i}: measured{tag}", 1, docs, t["restored_bytes"] / MIB, t["actual_rto_s"],
                     t["restore_s"], t["fixed_s"], f"{t['relative_error']:+.1%}"])
    out = table("5. RTO forecast (forecast_rto: fixed + bytes × the sample's s/byte; sample = medians)",
                ["", "n", "docs", "restored MiB", "RTO s", "size-dependent s", "fixed s", "error"], rows)
    low, high = result["relative_error_range"]
    return out + (f"\n   forecast error on the medians {result['relative_error']:+.1%} (per run {low:+.1%} to "
                  f"{high:+.1%}); naive 'same RTO as the sample': {result['naive_relative_error']:+.1%}")
