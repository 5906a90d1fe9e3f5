"""What a run will do, decided and checked before anything is touched (:func:`plan_run`), and
said before it does anything (`drdrill run --dry-run`, `drdrill validate`): the target, the
objectives, the tenants, and each scenario's steps. :mod:`drdrill.drill.runner` carries it out."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drdrill.core.clock import from_iso
from drdrill.core.durations import format_duration, parse_duration
from drdrill.core.evidence_store import StoredRun
from drdrill.core.history import entries
from drdrill.core.report import TrendPoint
from drdrill.drill.controls import load_mapping
from drdrill.drill.features import (
    LoadedFeature,
    default_features,
    feature_files,
    for_cluster,
    for_target,
    load_features,
)
from drdrill.errors import UsageError
from drdrill.evidence.keys import Signer, read_signer
from drdrill.report.writer import check_history
from drdrill.settings import DrillSettings, Paths, StackSettings, check_stack_name, load_settings, with_drill_stack
from drdrill.targets import make_target
from drdrill.targets.base import DrillTarget
from drdrill.targets.stack_target import StackDrillTarget

TREND_DRILLS = 12  # how many earlier drills the report's trend chart shows


@dataclass(frozen=True)
class RunRequest:
    feature_paths: list[Path]
    project_dir: Path
    target: str
    report_dir: Path | None
    rto: str | None
    rpo: str | None
    stack: str | None = None  # an existing local stack to drill on (kept running afterwards)
    config: Path | None = None  # drill settings (TOML); default: drdrill.toml in the project if present


def _objective_overrides(rto: str | None, rpo: str | None) -> dict[str, float]:
    overrides = {}
    if rto is not None:
        overrides["rto_seconds"] = parse_duration(rto, "--rto")
    if rpo is not None:
        overrides["rpo_seconds"] = parse_duration(rpo, "--rpo")
    for key, value in overrides.items():
        if value <= 0:
            raise UsageError(f"{key.split('_')[0]}: must be more than zero, got {value:g}s")
    return overrides


def _check_report_dir(report_dir: Path) -> None:
    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} exists and is not a directory")
    if report_dir.exists() and (report_dir / "report.json").exists():
        raise UsageError(f"--report-dir {report_dir} already holds a report",
                         hint="choose a new directory; reports are evidence and are never overwritten")
    parent = report_dir if report_dir.exists() else report_dir.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--report-dir {report_dir} is not writable")


@dataclass
class RunPlan:
    """Everything a run will do, decided and checked before anything is touched: what
    `--dry-run` prints, and what :func:`execute` carries out."""

    drill_id: str
    project_dir: Path
    features: list[LoadedFeature]
    settings: DrillSettings  # objectives with --rto/--rpo applied
    overrides: dict[str, float]
    target_name: str
    target: DrillTarget
    stack: str | None
    report_dir: Path
    history: Path  # the project's one history
    signer: Signer | None = None
    trend: list[TrendPoint] = field(default_factory=list)  # the history's latest drills
    previous_drill_at: datetime | None = None
    # The promise -> controls mapping (a team's own, or drdrill's) and what the report says of it.
    controls_mapping: dict[str, list[str]] = field(default_factory=dict)
    controls_source: dict[str, str] = field(default_factory=dict)
    # The evidence store's runs ([evidence] store_bucket), read when the run starts (drill/publish).
    stored_runs: list[StoredRun] | None = None

    @property
    def destructive(self) -> list[str]:
        """The steps that need a destructive target, where they are written (first per feature)."""
        return [str(f.destructive_steps[0]) for f in self.features if f.destructive]


def plan_run(request: RunRequest, paths: Paths, stack_settings: StackSettings) -> RunPlan:
    """Check every input and build the target (no I/O on any service)."""
    if not request.project_dir.is_dir():
        raise UsageError(f"--project-dir {request.project_dir} is not a directory",
                         hint="the directory holding features/, steps/ and drdrill.toml")
    chosen = feature_files(request.feature_paths) if request.feature_paths else None
    overrides = _objective_overrides(request.rto, request.rpo)
    if request.stack is not None:
        check_stack_name(request.stack, "--stack")
    drill_id = new_drill_id()
    report_dir = request.report_dir or request.project_dir / "reports" / drill_id
    _check_report_dir(report_dir)
    loaded = for_target(load_features(chosen, request.project_dir), request.target) if chosen is not None else \
        default_features(request.project_dir, request.target)
    settings = _settings(request)
    _refuse_destructive_steps(request.target, loaded, settings)
    if overrides:
        settings = replace(settings, objectives=replace(settings.objectives, **overrides))
    history = settings.history_path or Path("reports") / "history.jsonl"
    history = history if history.is_absolute() else request.project_dir / history
    signer = read_signer(settings.evidence_key_file, settings.evidence_key_env)
    mapping, mapping_source = load_mapping(settings.controls_file)  # a bad team file: exit 2, now
    trend: list[TrendPoint] = []
    previous_at = None
    if history.exists():  # a broken chain is refused before anything runs, not after
        text = history.read_text(encoding="utf-8")
        check_history(text, history, signer)
        past = entries(text.splitlines())
        trend = [TrendPoint(e.drill_id, e.finished_at, e.verdict, e.summary.get("rto_seconds"),
                            e.summary.get("rpo_seconds")) for e in past[-TREND_DRILLS:]]
        previous_at = next((from_iso(e.finished_at) for e in reversed(past) if e.finished_at), None)
    stack_settings = with_drill_stack(stack_settings, settings)  # [stack] of drdrill.toml
    target = make_target(request.target, paths, stack_settings, settings, drill_id=drill_id, stack=request.stack,
                         destructive=any(f.destructive for f in loaded))
    es_nodes: int | None = None if request.target == "live" else stack_settings.elasticsearch_nodes
    if request.stack is not None and isinstance(target, StackDrillTarget):
        # Its state file: a stack that is not running is a usage error, now; it keeps its nodes.
        es_nodes = len(target.stack.endpoints().elasticsearch_nodes) or 1
    loaded = for_cluster(loaded, es_nodes)
    return RunPlan(drill_id, request.project_dir, loaded, settings, overrides, request.target, target,
                   request.stack, report_dir, history, signer, trend, previous_at, mapping, mapping_source)


def new_drill_id() -> str:
    """``<UTC second>-<6 hex>``: sortable, unique, and what drdrill's marks carry."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def _refuse_destructive_steps(target: str, loaded: list[LoadedFeature], settings: DrillSettings) -> None:
    """On a live environment that its settings do not mark as a drill environment, a step that
    needs a destructive target is refused before anything is touched (exit 2), named with its
    file and line, whatever the feature's tags say. (A marked one is checked further, with I/O,
    when the run starts: the bucket's marker, the namespace's label.)"""
    if target != "live" or settings.target is None or settings.target.may_be_destroyed:
        return
    harmful = [step for feature in loaded for step in feature.destructive_steps]
    if harmful:
        from drdrill.core.layout import DRILL_MARKER_KEY

        more = f" (and {len(harmful) - 1} more)" if len(harmful) > 1 else ""
        raise UsageError(
            f"refusing {harmful[0]}{more} on live environment {settings.target.environment!r}: the step needs a "
            "destructive target and the environment is not marked as a drill environment",
            hint=f"mark it with environment = \"drill\" in [target] AND an object {DRILL_MARKER_KEY} in its bucket; "
                 "or run the restore test (features/restore_test.feature), which only restores beside the live data")


def _settings(request: RunRequest) -> DrillSettings:
    path = request.config or request.project_dir / "drdrill.toml"
    if request.config is None and not path.exists():
        return DrillSettings()
    return load_settings(path)




def describe_plan(plan: RunPlan) -> dict[str, Any]:
    from pytest_bdd.feature import get_feature

    settings = plan.settings
    features = []
    for loaded in plan.features:
        feature = get_feature(str(loaded.path.parent), loaded.path.name)
        features.append({
            "path": str(loaded.path), "name": feature.name, "tags": sorted(loaded.tags),
            "destructive": loaded.destructive,
            "scenarios": [{"name": s.name, "steps": [f"{st.keyword} {st.name}" for st in s.steps]}
                          for s in feature.scenarios.values()],
        })
    return {
        "drill_id": plan.drill_id, "target": {"name": plan.target_name, **plan.target.describe()},
        "objectives": {"rto_seconds": settings.objectives.rto_seconds, "rpo_seconds": settings.objectives.rpo_seconds,
                       "overridden_by_command_line": sorted(plan.overrides)},
        "tenants": [t.key for t in settings.tenants],
        "data": {"indices_per_tenant": settings.data.indices_per_tenant,
                 "docs_per_index": settings.data.docs_per_index},
        "canary": {"interval_seconds": settings.canary_interval_s, "post_backup_seconds": settings.post_backup_s},
        "dump_encryption": settings.kdf.describe(),
        "report_dir": str(plan.report_dir), "features": features,
    }


def plan_text(plan: dict[str, Any]) -> str:
    obj = plan["objectives"]
    target = plan["target"]
    lines = [f"Plan for drill {plan['drill_id']} (nothing has been started or touched):",
             f"  target      {target['name']}: " + ", ".join(f"{k} {v}" for k, v in target.items() if k != "name"),
             f"  objectives  RTO {format_duration(obj['rto_seconds'])}, RPO {format_duration(obj['rpo_seconds'])}"
             + (" (from the command line: " + ", ".join(f"--{key.split('_')[0]}"
                                                        for key in obj["overridden_by_command_line"]) + ")"
                if obj["overridden_by_command_line"] else "")]
    if target["name"] != "live":
        data = plan["data"]
        lines.append(f"  tenants     {', '.join(plan['tenants'])} (unless a scenario names its own); "
                     f"{data['indices_per_tenant']} indices x {data['docs_per_index']} documents each")
        lines.append(f"  dumps       encrypted with {plan['dump_encryption']}")
    lines.append(f"  report      {plan['report_dir']}")
    for feature in plan["features"]:
        tags = " ".join(f"@{t}" for t in feature["tags"])
        lines.append(f"Feature: {feature['name']}  ({feature['path']}{', ' + tags if tags else ''})")
        for scenario in feature["scenarios"]:
            lines.append(f"  Scenario: {scenario['name']}")
            lines += [f"    {step}" for step in scenario["steps"]]
    return "\n".join(lines) + "\n"
