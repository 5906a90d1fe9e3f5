"""``drdrill run``: check the inputs, start the target, run the scenarios with pytest-bdd,
write the report, and map the verdict to the exit status."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drdrill.config import DrillSettings, Paths, StackSettings, check_stack_name, load_settings
from drdrill.core.durations import parse_duration
from drdrill.core.objectives import Verdict
from drdrill.core.report import Problem, Report
from drdrill.drill.bdd import DrillPlugin, RunContext, align_cucumber
from drdrill.drill.features import default_features, feature_files, load_features
from drdrill.drill.reporting import RunInfo, build_report
from drdrill.errors import EXIT_USAGE, UsageError
from drdrill.targets import check_destruction_allowed, make_target
from drdrill.targets.base import DrillTarget

log = logging.getLogger(__name__)

BINDING_MODULE = "test_drill.py"


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


@dataclass(frozen=True)
class RunResult:
    report: Report | None
    report_dir: Path | None
    exit_status: int


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


def run(request: RunRequest, paths: Paths, stack_settings: StackSettings, progress=None) -> RunResult:
    from drdrill.report_writer import write_report

    chosen = feature_files(request.feature_paths) if request.feature_paths else None
    overrides = _objective_overrides(request.rto, request.rpo)
    if request.stack is not None:
        check_stack_name(request.stack, "--stack")
    drill_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    reports_root = request.project_dir / "reports"
    report_dir = request.report_dir or reports_root / drill_id
    _check_report_dir(report_dir)
    loaded = load_features(chosen, request.project_dir) if chosen is not None else \
        default_features(request.project_dir, request.target)
    files = [f.path for f in loaded]
    settings = _settings(request)

    target = make_target(request.target, paths, stack_settings, settings, drill_id=drill_id, stack=request.stack)
    destructive = [f.path.name for f in loaded if f.destructive]
    if destructive:
        check_destruction_allowed(target, destructive)
    if request.stack is not None:
        _check_existing_store(target)
    ctx = RunContext(drill_id=drill_id, target=target, settings=settings,
                     objective_overrides=overrides, progress=progress)
    ctx.settings.objectives = ctx.objectives()
    started = datetime.now(UTC)
    interrupted = False
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    with tempfile.TemporaryDirectory(prefix="drdrill-run-") as tmp:
        cucumber_path = Path(tmp) / "cucumber.json"
        os.environ["DRDRILL_FEATURES"] = os.pathsep.join(str(f.resolve()) for f in files)
        code = -1
        try:
            code = _pytest(request.project_dir, cucumber_path, DrillPlugin(ctx))
            interrupted = code == 2  # pytest.ExitCode.INTERRUPTED
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # Cleanup must finish even if the operator presses Ctrl-C again.
            previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                _finish_target(ctx)
            finally:
                signal.signal(signal.SIGINT, previous_int)
                signal.signal(signal.SIGTERM, previous_term)
        cucumber = _read_json(cucumber_path)
    if code not in (-1, 0, 1, 2) and not ctx.usage_errors:
        # 3: pytest's internal error, 4: its usage error, 5: nothing collected: the harness broke.
        ctx.problems.append(Problem(None, "error", f"the scenario runner ended with status {code}",
                                    "a bug or a broken step library; run with -v for the log"))
    ran = {s.name for s in ctx.scenarios}
    missing = sorted(ran - {o.scenario for o in ctx.outcomes})
    if missing and not interrupted:
        ctx.problems.append(Problem(None, "error", f"scenario(s) without a measured outcome: {', '.join(missing)}",
                                    "every scenario must drive a drill; see its steps"))
    if ctx.usage_errors and not ctx.outcomes:
        raise UsageError(ctx.usage_errors[0])
    if interrupted:
        ctx.problems.append(Problem(None, "error", "the drill was interrupted before it finished",
                                    "the report is incomplete; every process the drill started was stopped"))
    report = build_report(RunInfo(drill_id, request.target, started, datetime.now(UTC), ctx.settings.objectives,
                                  incomplete=interrupted), ctx.outcomes, ctx.timeline, ctx.scenarios,
                          extra_problems=ctx.problems)
    write_report(report, report_dir, history_path=report_dir.parent / "history.jsonl",
                 cucumber_json=align_cucumber(cucumber, report.scenarios))
    status = EXIT_USAGE if ctx.usage_errors else Verdict(report.verdict, report.verdict_reasons).exit_status
    return RunResult(report, report_dir, status)


def _finish_target(ctx: RunContext) -> None:
    """Undo faults, remove what the run created, check that what existed before the run is
    unchanged, then stop the target; the stop runs even when the check fails."""
    try:
        if ctx.target_started:
            ctx.target.undo_faults()
            ctx.target.cleanup()
            altered = ctx.target.altered_protected()
            if altered:
                ctx.problems.append(Problem(
                    None, "error", f"{len(altered)} object(s) that existed before the drill changed",
                    "drdrill must never alter what it did not create: this is a bug", {"altered": altered[:20]}))
    except Exception as exc:
        ctx.problems.append(Problem("stop-target", "error", f"could not check or clean the backup store: {exc}"))
    finally:
        try:
            ctx.target.stop()
        except Exception as exc:
            ctx.problems.append(Problem("stop-target", "error", f"could not stop the target: {exc}"))


def _settings(request: RunRequest) -> DrillSettings:
    path = request.config or request.project_dir / "drdrill.toml"
    if request.config is None and not path.exists():
        return DrillSettings()
    return load_settings(path)


def _check_existing_store(target: DrillTarget) -> None:
    """Drilling on an existing stack: its backup store must be the platform's layout."""
    from drdrill.core.layout import validate_bucket_layout

    store = target.platform(request_timeout_s=10).store  # raises StackNotUp when it is not running
    problems = validate_bucket_layout(o.key for o in store.list(""))
    if problems:
        raise UsageError(f"bucket {store.bucket} is not laid out as the platform's backups: {problems[0]}",
                         hint="expected <org>/<namespace>/ snapshot repositories and metadata/<scope>/ dumps")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _read_json(path: Path) -> list | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pytest(project_dir: Path, cucumber_path: Path, plugin: DrillPlugin) -> int:
    import pytest

    args = [
        str(project_dir / "steps" / BINDING_MODULE), f"--rootdir={project_dir}", "-p", "no:cacheprovider",
        "-s", "-p", "no:terminal", "-p", "no:warnings", "-p", "no:logging",
        "-o", "addopts=", "-o", "testpaths=",
        "-W", "ignore::pytest.PytestAssertRewriteWarning", f"--cucumberjson={cucumber_path}",
    ]
    from drdrill.drill import bdd

    with warnings.catch_warnings():
        # Gherkin tags become pytest marks: a team's own tags are theirs to choose.
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return int(pytest.main(args, plugins=[plugin, bdd]))
