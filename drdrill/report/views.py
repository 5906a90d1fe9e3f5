"""What the human formats draw, computed from the report model (pure): the per-scenario
groups, the SVG timelines, the objective bars and the trend of the drills before this one."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from drdrill.core.durations import format_duration
from drdrill.core.evidenced import objective_results
from drdrill.core.report import Report
from drdrill.core.timeline import Event, Phase


def dur(seconds: float | None) -> str:
    return "not measured" if seconds is None else format_duration(seconds)


def timeline_view(phases: list[Phase], events: list[Event]) -> dict[str, Any]:
    """Geometry for one SVG timeline: x is seconds since its first phase began."""
    label_w, chart_w, row_h, top = 190, 660, 24, 46
    origin = min([p.start_offset for p in phases], default=0.0)
    ends = [p.end_offset if p.end_offset is not None else p.start_offset for p in phases]
    span = max([*(e - origin for e in ends), *(e.offset - origin for e in events), 0.001])

    def x(offset: float) -> float:
        return round(label_w + chart_w * (offset - origin) / span, 1)

    bars = []
    for i, p in enumerate(phases):
        end = p.end_offset if p.end_offset is not None else origin + span  # unfinished: to the end
        bars.append({"name": p.name if len(p.name) <= 30 else p.name[:29] + "…", "status": p.status,
                     "x": x(p.start_offset), "y": top + i * row_h, "w": max(round(x(end) - x(p.start_offset), 1), 1.5),
                     "label": dur(p.duration_seconds)})
    height = top + max(len(bars), 1) * row_h + 10
    marks = [e for e in events if e.name in ("disaster", "recovered")]
    markers = []
    for n, e in enumerate(marks):
        # Each label on its own row, on the side with room: close marks never overlap.
        markers.append({"name": e.name, "x": x(e.offset), "label_y": 12 + (n % 3) * 12,
                        "anchor": "end" if e.offset - origin > span / 2 else "start",
                        "label": f"T_{e.name} +{format_duration(e.offset - origin)}"})
    ticks = [{"x": x(origin + span * k / 4), "label": format_duration(span * k / 4)} for k in range(5)]
    return {"width": label_w + chart_w + 20, "height": height + 20, "axis_y": height, "chart_x": label_w,
            "bars": bars, "markers": markers, "ticks": ticks}


def scenario_groups(report: Report) -> dict[str, Any]:
    """The report scenario by scenario: its verdict, figures, phases, timeline and tenants; and
    what belongs to the run as a whole (starting and stopping the target, healing it)."""
    names = {s.name for s in report.scenarios}
    groups: list[dict[str, Any]] = []
    for scenario in report.scenarios:
        phases = [p for p in report.phases if p.detail == scenario.name]
        first = min((p.start_offset for p in phases), default=None)
        last = max((p.end_offset or p.start_offset for p in phases), default=None)
        events = [e for e in report.events if first is not None and last is not None and first <= e.offset <= last]
        groups.append({
            "scenario": scenario, "phases": phases, "timeline": timeline_view(phases, events) if phases else None,
            "tenants": scenario.tenants, "objectives": objective_results(scenario, report.objectives),
        })
    run_phases = [p for p in report.phases if p.detail not in names]
    claimed = {id(e) for g in groups if g["timeline"] for e in report.events
               if any(p.start_offset <= e.offset <= (p.end_offset or p.start_offset) for p in g["phases"])}
    run_events = [e for e in report.events if id(e) not in claimed]
    return {"scenarios": groups, "run_phases": run_phases,
            "run_timeline": timeline_view(run_phases, run_events) if run_phases else None}


def objective_bars(report: Report) -> list[dict[str, Any]]:
    """Achieved vs target for RTO and RPO, each scaled to the larger of the two: the run's when
    its recovery scenarios share their objectives, else one per scenario against its own.
    ``state`` fails closed: "ok" only where every scenario's check of it ran and passed."""
    recoveries = [s for s in report.scenarios if not s.expected_failure]
    own = {s.objectives or report.objectives for s in recoveries}
    rows: list[tuple[str, float | None, float, str]] = []
    if len(own) > 1:
        for scenario in recoveries:
            rows += [(f"{r.name} · {scenario.name}", r.value, r.target, _STATE[r.status])
                     for r in objective_results(scenario, report.objectives)]
    else:
        results = [objective_results(s, report.objectives) for s in recoveries]
        for n, (name, achieved, target) in enumerate((
                ("RTO", report.achieved.rto_seconds, report.objectives.rto_seconds),
                ("RPO", report.achieved.rpo_seconds, report.objectives.rpo_seconds))):
            statuses = {r[n].status for r in results}
            state = ("unmeasured" if achieved is None else "over" if achieved > target or "failed" in statuses
                     else "not evidenced" if "not evidenced" in statuses else "ok")
            rows.append((name, achieved, target, state))
    return [{"name": name, "achieved": dur(achieved), "target": dur(target),
             "achieved_w": 0 if achieved is None else max(round(achieved * 500 / max(target, achieved, 0.001), 1), 1.5),
             "target_w": round(target * 500 / max(target, achieved or 0.0, 0.001), 1), "state": state}
            for name, achieved, target, state in rows]


_STATE = {"passed": "ok", "failed": "over", "not evidenced": "not evidenced"}


def trend_view(report: Report) -> dict[str, Any] | None:
    """RTO and RPO of the earlier drills and this one, on a log scale of seconds with both
    objectives drawn: a 3 s RTO and a 30 min objective are both visible, and a regression
    from seconds to minutes shows at a glance. None without earlier drills."""
    if not report.trend:
        return None
    points: list[dict[str, Any]] = [
        {"drill_id": p.drill_id, "when": _short_time(p.finished_at), "verdict": p.verdict, "rto": p.rto_seconds,
         "rpo": p.rpo_seconds} for p in report.trend]
    points.append({"drill_id": report.drill_id, "when": "this drill", "verdict": report.verdict,
                   "rto": report.achieved.rto_seconds, "rpo": report.achieved.rpo_seconds})
    objectives = {"rto": report.objectives.rto_seconds, "rpo": report.objectives.rpo_seconds}
    values = [v for pt in points for v in (pt["rto"], pt["rpo"]) if v is not None]
    low = math.log10(max(min([*values, *objectives.values()]) / 2, 0.1))
    high = math.log10(max([*values, *objectives.values()]) * 1.5)
    chart_h, top, left, slot = 180, 20, 110, 84

    def y(seconds: float) -> float:
        return round(top + chart_h * (1 - (math.log10(max(seconds, 10**low)) - low) / (high - low)), 1)

    bars = []
    for n, pt in enumerate(points):
        for k, key in enumerate(("rto", "rpo")):
            value = pt[key]
            top_y = y(value) if value is not None else top + chart_h
            bars.append({"key": key, "x": left + n * slot + 18 + k * 22, "y": top_y,
                         "h": max(round(top + chart_h - top_y, 1), 1.0), "w": 18,
                         "over": value is not None and value > objectives[key],
                         "title": f"{pt['drill_id']}: {key.upper()} {dur(value)} (objective {dur(objectives[key])})"})
    grid = [{"y": y(s), "label": format_duration(s).replace(".00s", "s")} for s in _GRID
            if low <= math.log10(s) <= high]
    width = left + len(points) * slot + 20
    return {"width": width, "height": top + chart_h + 50, "base": top + chart_h, "left": left, "bars": bars,
            "grid": grid, "objectives": [{"key": k, "y": y(v), "label": f"{k.upper()} objective {dur(v)}"}
                                         for k, v in objectives.items()],
            "labels": [{"x": left + n * slot + 38, "text": pt["when"], "drill_id": pt["drill_id"]}
                       for n, pt in enumerate(points)], "points": points}


_GRID = (1, 10, 60, 600, 3600, 6 * 3600, 86400, 7 * 86400)


def _short_time(iso: str | None) -> str:
    """``11-26 07:13`` of an ISO timestamp (the chart's column label)."""
    return f"{iso[5:10]} {iso[11:16]}" if iso and len(iso) >= 16 else (iso or "")


# How many recovery points the first screen names before "and N more".
FIRST_SCREEN_POINTS = 6


def auditor_view(report: Report) -> dict[str, Any]:
    """What the first screen of report.html (page 1 of the PDF) answers, without scrolling: the
    verdict, the environment, the date, RTO/RPO against their targets, which backups were
    restored and how old they were, the promises with their controls, and the signing key."""
    notes = report.evidence.notes
    restore_test = notes.get("restore_test") or {}
    target_notes = restore_test.get("target") or notes.get("target") or {}
    environment = target_notes.get("environment") if isinstance(target_notes, dict) else None
    points: list[str] = []
    recovery = restore_test.get("recovery_points") or {}

    def when(at: object) -> str:
        """``2026-12-02T02:00:03Z, 6h 12m old`` (at the report's end), from an ISO time."""
        try:
            taken = datetime.fromisoformat(str(at))
        except ValueError:
            return "time unknown"
        if report.finished_at is None:
            return taken.strftime('%Y-%m-%dT%H:%M:%SZ')
        age = format_duration((report.finished_at - taken).total_seconds())
        return f"{taken.strftime('%Y-%m-%dT%H:%M:%SZ')}, {age} old"

    for dump in recovery.get("dumps") or []:
        points.append(f"{dump.get('key')} (taken {when(dump.get('taken_at'))})")
    for snap in recovery.get("snapshots") or []:
        if snap.get("snapshot"):
            started = when(snap.get("started_at"))
            points.append(f"{snap.get('tenant')}: snapshot {snap.get('snapshot')} (started {started})")
    if not points:  # a runbook drill restores the backups it took itself, during the drill
        points += [f"{o.key} (taken during this drill)" for o in report.evidence.objects]
        points += [f"{s.org_id}/{s.namespace}: snapshot {s.name} (taken during this drill)"
                   for s in report.evidence.snapshots if s.org_id]
    achieved, objectives = report.achieved, report.objectives
    return {
        "environment": environment or report.target,
        "objectives": [("RTO", dur(achieved.rto_seconds), format_duration(objectives.rto_seconds)),
                       ("RPO", dur(achieved.rpo_seconds), format_duration(objectives.rpo_seconds)),
                       ("Backup exposure", dur(achieved.backup_exposure_seconds), "")],
        "points": points[:FIRST_SCREEN_POINTS], "more_points": max(0, len(points) - FIRST_SCREEN_POINTS),
        "controls": report.controls, "signing_key": notes.get("signing_key"),
        "tester": _tester(notes.get("tested_by")),
        "mapping": (notes.get("controls_mapping") or {}).get("source"),
    }


def _tester(tested_by: object) -> str | None:
    """"Jane Roe (independent)" as the settings recorded it; None when the report predates it."""
    if not isinstance(tested_by, dict):
        return None
    independent = tested_by.get("independent")
    role = ("independent of the platform's operators" if independent is True else
            "not independent" if independent is False else "independence not recorded")
    return f"{tested_by.get('tester')} ({role})"
