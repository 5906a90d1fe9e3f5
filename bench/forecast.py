"""Benchmark 5, RTO forecast: from drills on a sample, predict the RTO of a 10× larger platform
with drdrill.core.forecast (fixed + per tenant + per byte, from the samples' own phase
breakdown, as a drill's report does), then run the larger drills and report the error.

Two directions, each checked at 10×: more data (one tenant, 10^5 → 10^6 documents) and more
tenants (10 → 100 tenants of 1 index × 1000 documents). Each forecast is made after the larger
drill's backup and before its disaster: its snapshots' size and tenant count are what an
operator knows about production before a drill. Nothing measured on a larger drill's recovery
enters its forecast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.common import MIB, median, progress, table
from bench.context import Bench
from bench.drills import DrillResult, DrillShape, drill_for, run_drill
from drdrill.core.forecast import FORECAST_FACTOR, RestoreSample, RtoModel, fit_model
from drdrill.drill.session import Drill


@dataclass(frozen=True)
class Direction:
    name: str
    sample: DrillShape
    smoke_sample: DrillShape

    def target(self, sample: DrillShape) -> DrillShape:
        if self.name == "tenants":
            return DrillShape(sample.tenants * FORECAST_FACTOR, sample.indices, sample.docs_per_index)
        return DrillShape(sample.tenants, sample.indices, sample.docs_per_index * FORECAST_FACTOR)


DIRECTIONS = (Direction("docs", DrillShape(1, 1, 10**5), DrillShape(1, 1, 100)),
              Direction("tenants", DrillShape(10, 1, 1000), DrillShape(1, 1, 100)))


def _model_row(model: RtoModel, samples: list[DrillResult]) -> dict[str, Any]:
    return {"n": len(samples), "fixed_s": model.fixed_s, "per_tenant_s": model.per_tenant_s,
            "seconds_per_mib": model.seconds_per_byte * MIB, "basis": model.basis,
            "sample_rto_s": median([s.rto_s or 0.0 for s in samples]),
            "sample_bytes": median([float(s.snapshot_bytes) for s in samples])}


def _samples(bench: Bench, shape: DrillShape) -> list[DrillResult]:
    """The sample drills: one measured earlier in the run may count, then fresh ones up to --repeat."""
    samples = [drill_for(bench, shape, "forecast sample #1", benchmark="forecast")]
    while not bench.options.smoke and len(samples) < bench.options.repeat:
        if not bench.budget.fits(max(s.wall_s for s in samples) * 1.2):
            break
        samples.append(run_drill(bench, shape, f"forecast sample #{len(samples) + 1}"))
    return [s for s in samples if s.ok and s.sample is not None]


def _target(bench: Bench, model: RtoModel, shape: DrillShape, label: str) -> dict[str, Any]:
    """One larger drill, forecast between its backup and its disaster."""
    forecast: dict[str, Any] = {}

    def make_forecast(drill: Drill) -> None:
        assert drill.backup is not None
        nbytes = sum(s.size_bytes for s in drill.backup.snapshots)
        tenants = len(drill.settings.tenants)
        forecast.update(target_bytes=nbytes, target_tenants=tenants, predicted_rto_s=model.predict(tenants, nbytes),
                        terms=model.terms(tenants, nbytes), dominant=model.dominant(tenants, nbytes))
        progress(f"forecast: predicted RTO {forecast['predicted_rto_s']:.1f}s for {tenants} tenant(s), "
                 f"{nbytes / MIB:.1f} MiB ({forecast['dominant']} dominates), now running it")

    result = run_drill(bench, shape, label, after_backup=make_forecast)
    bench.drills.setdefault(shape, result)
    ok = result.ok and result.rto_s is not None and "predicted_rto_s" in forecast
    row: dict[str, Any] = {"status": "ok" if ok else "failed", **forecast, "actual_rto_s": result.rto_s,
                           "restore_wall_s": result.restore_wall_s, "wall_s": result.wall_s,
                           "phases": result.phases, "problems": result.problems}
    if ok:
        assert result.rto_s is not None
        row["relative_error"] = (forecast["predicted_rto_s"] - result.rto_s) / result.rto_s
    return row


def _direction(bench: Bench, direction: Direction) -> dict[str, Any]:
    sample_shape = direction.smoke_sample if bench.options.smoke else direction.sample
    target_shape = direction.target(sample_shape)
    samples = _samples(bench, sample_shape)
    if not samples:
        return {"status": "failed", "reason": "no sample drill succeeded"}
    restore_samples: list[RestoreSample] = [s.sample for s in samples if s.sample is not None]
    model = fit_model(restore_samples)
    base: dict[str, Any] = {"sample_shape": sample_shape.__dict__, "target_shape": target_shape.__dict__,
            "model": _model_row(model, samples), "samples": [s.to_dict() for s in samples]}
    rows: list[dict[str, Any]] = []
    repeats = 1 if bench.options.smoke else bench.options.repeat
    while len(rows) < repeats:
        walls = [r["wall_s"] for r in rows] or [max(s.wall_s for s in samples) * FORECAST_FACTOR]
        if rows and not bench.budget.fits(max(walls) * 1.2):
            break
        if not rows and not bench.options.smoke and not bench.budget.fits(max(walls)):
            break
        rows.append(_target(bench, model, target_shape, f"forecast {direction.name} ×{FORECAST_FACTOR} "
                                                         f"#{len(rows) + 1}"))
    good = [r for r in rows if r["status"] == "ok"]
    if not good:
        return {"status": "failed" if rows else "skipped", "reason": "budget" if not rows else "target drill failed",
                **base, "targets": rows}
    predicted, actual = median([r["predicted_rto_s"] for r in good]), median([r["actual_rto_s"] for r in good])
    assert predicted is not None and actual is not None
    errors = [r["relative_error"] for r in good]
    naive = base["model"]["sample_rto_s"]
    return {"status": "ok", **base, "targets": rows, "predicted_rto_s": predicted, "actual_rto_s": actual,
            "relative_error": (predicted - actual) / actual, "abs_relative_error": abs(predicted - actual) / actual,
            "relative_error_range": [min(errors), max(errors)],
            # The naive forecast "the RTO stays what the sample showed", for comparison.
            "naive_relative_error": (naive - actual) / actual if naive is not None else None}


def measure(bench: Bench) -> dict[str, Any]:
    results = {d.name: _direction(bench, d) for d in DIRECTIONS}
    states = {r["status"] for r in results.values()}
    return {"status": "ok" if "ok" in states else ("failed" if "failed" in states else "skipped"),
            "factor": FORECAST_FACTOR, "directions": results}


def render(result: dict[str, Any]) -> str:
    if result["status"] != "ok" and "directions" not in result:
        return f"5. RTO forecast: {result['status']} ({result.get('reason')})"
    rows: list[list[Any]] = []
    notes = []
    for name, d in result["directions"].items():
        if d["status"] != "ok":
            notes.append(f"   {name}: {d['status']} ({d.get('reason')})")
            continue
        m = d["model"]
        rows.append([f"{name}: sample (n={m['n']})", d["sample_shape"]["tenants"], d["sample_shape"]["docs_per_index"],
                     (m["sample_bytes"] or 0) / MIB, m["sample_rto_s"], None, None])
        for i, t in enumerate(r for r in d["targets"] if r["status"] == "ok"):
            docs = d["target_shape"]["docs_per_index"]
            rows.append([f"{name}: ×{result['factor']} #{i + 1}", t["target_tenants"], docs, t["target_bytes"] / MIB,
                         t["actual_rto_s"], t["predicted_rto_s"], f"{t['relative_error']:+.1%} ({t['dominant']})"])
        low, high = d["relative_error_range"]
        naive = d["naive_relative_error"]
        notes.append(f"   {name}: fixed {m['fixed_s']:.2f}s + {m['per_tenant_s']:.3f}s/tenant + "
                     f"{m['seconds_per_mib']:.4f}s/MiB; error on the medians {d['relative_error']:+.1%} "
                     f"(per run {low:+.1%} to {high:+.1%}); naive 'same RTO': "
                     f"{'n/a' if naive is None else f'{naive:+.1%}'}")
    out = table("5. RTO forecast (fixed + per tenant + per byte, from the sample's phase breakdown)",
                ["", "tenants", "docs/index", "snapshot MiB", "RTO s", "forecast s", "error (dominant term)"], rows)
    return out + ("\n" + "\n".join(notes) if notes else "")
