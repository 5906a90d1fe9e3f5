"""``drdrill run``: check the inputs, start the target, run the scenarios with pytest-bdd,
write the report, and map the verdict to the exit status."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from drdrill.config import DrillSettings, Paths, StackSettings, check_stack_name, load_settings
from drdrill.core.clock import from_iso
from drdrill.core.durations import parse_duration
from drdrill.core.history import entries
from drdrill.core.objectives import Verdict
from drdrill.core.report import Problem, Report, TrendPoint, redact_text
from drdrill.drill.bdd import DrillPlugin, RunContext, align_cucumber
from drdrill.drill.features import (
    LoadedFeature,
    binding_module,
    default_features,
    feature_files,
    for_target,
    load_features,
    step_modules,
)
from drdrill.drill.plan import describe_plan
from drdrill.drill.reporting import RunInfo, build_report
from drdrill.errors import EXIT_USAGE, UsageError
from drdrill.evidence.keys import Signer, read_signer
from drdrill.report_writer import check_history
from drdrill.targets import check_destruction_allowed, make_target
from drdrill.targets.base import DrillTarget

log = logging.getLogger(__name__)

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
    trend: list[TrendPoint] = []
    previous_at = None
    if history.exists():  # a broken chain is refused before anything runs, not after
        text = history.read_text(encoding="utf-8")
        check_history(text, history, signer)
        past = entries(text.splitlines())
        trend = [TrendPoint(e.drill_id, e.finished_at, e.verdict, e.summary.get("rto_seconds"),
                            e.summary.get("rpo_seconds")) for e in past[-TREND_DRILLS:]]
        previous_at = next((from_iso(e.finished_at) for e in reversed(past) if e.finished_at), None)
    target = make_target(request.target, paths, stack_settings, settings, drill_id=drill_id, stack=request.stack,
                         destructive=any(f.destructive for f in loaded))
    return RunPlan(drill_id, request.project_dir, loaded, settings, overrides, request.target, target,
                   request.stack, report_dir, history, signer, trend, previous_at)


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


def run(request: RunRequest, paths: Paths, stack_settings: StackSettings, progress=None) -> RunResult:
    return execute(plan_run(request, paths, stack_settings), progress)


def execute(plan: RunPlan, progress=None) -> RunResult:
    """Start the target, run the scenarios, stop the target, write the report."""
    from drdrill.report_writer import write_report

    if plan.destructive:
        check_destruction_allowed(plan.target, plan.destructive)
    if plan.stack is not None:
        _check_existing_store(plan.target)
    ctx = RunContext(drill_id=plan.drill_id, target=plan.target, settings=plan.settings,
                     objective_overrides=plan.overrides, progress=progress)
    started = datetime.now(UTC)
    interrupted = False
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    with tempfile.TemporaryDirectory(prefix="drdrill-run-") as tmp, _drill_log(Path(tmp) / "drill.log") as log_path:
        cucumber_path = Path(tmp) / "cucumber.json"
        os.environ["DRDRILL_FEATURES"] = os.pathsep.join(str(f.path.resolve()) for f in plan.features)
        code = -1
        service_logs: dict[str, str] = {}
        target_facts: dict[str, object] = {}
        try:
            code = _pytest(plan.project_dir, cucumber_path, DrillPlugin(ctx))
            interrupted = code == 2  # pytest.ExitCode.INTERRUPTED
        except KeyboardInterrupt:
            interrupted = True
        finally:
            # Cleanup must finish even if the operator presses Ctrl-C again.
            previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                service_logs = _service_logs(ctx)  # before the target, and its logs, are gone
                target_facts = _target_facts(ctx)
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
            ctx.problems.append(Problem(None, "error", f"scenario(s) without a measured outcome: "
                                        f"{', '.join(missing)}", "every scenario must drive a drill; see its steps"))
        if ctx.usage_errors and not ctx.outcomes:
            raise UsageError(ctx.usage_errors[0])
        # A scenario refused as bad input after others ran: the report says which and why (exit 2).
        ctx.problems += [Problem(None, "error", text, "bad input, not a platform failure: fix the scenario or "
                                 "the settings") for text in ctx.usage_errors]
        if interrupted:
            ctx.problems.append(Problem(None, "error", "the drill was interrupted before it finished",
                                        "the report is incomplete; every process the drill started was stopped"))
        report = build_report(RunInfo(plan.drill_id, plan.target_name, started, datetime.now(UTC),
                                      plan.settings.objectives, incomplete=interrupted, trend=plan.trend,
                                      previous_drill_at=plan.previous_drill_at, target_facts=target_facts),
                              ctx.outcomes, ctx.timeline,
                              ctx.scenarios, extra_problems=ctx.problems)
        # The drill's own log always; the services' logs when something went wrong (they explain it);
        # the exact feature files run and the resolved settings, for the evidence pack.
        extra = {"drill.log": redact_text(log_path.read_text(errors="replace")).encode(),
                 "settings.json": (json.dumps(describe_plan(plan), indent=2, sort_keys=True) + "\n").encode(),
                 **_feature_copies(plan)}
        if report.verdict != "passed":
            extra.update({f"logs/{name}.log": redact_text(text).encode() for name, text in service_logs.items()})
        write_report(report, plan.report_dir, history_path=plan.history,
                     cucumber_json=align_cucumber(cucumber, report.scenarios), extra_files=extra, signer=plan.signer)
    status = EXIT_USAGE if ctx.usage_errors else Verdict(report.verdict, report.verdict_reasons).exit_status
    return RunResult(report, plan.report_dir, status)


def _feature_copies(plan: RunPlan) -> dict[str, bytes]:
    """``features/<name>``: byte for byte the files this run drilled."""
    copies: dict[str, bytes] = {}
    for feature in plan.features:
        name = f"features/{feature.path.name}"
        if name in copies:  # two directories with the same file name
            name = f"features/{len(copies)}-{feature.path.name}"
        copies[name] = feature.path.read_bytes()
    return copies


@contextlib.contextmanager
def _drill_log(path: Path) -> Iterator[Path]:
    """Everything drdrill logs during the run, kept for the report directory."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(min(previous, logging.INFO) if previous else logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def _service_logs(ctx: RunContext) -> dict[str, str]:
    if not ctx.target_started:
        return {}
    try:
        return ctx.target.service_logs()
    except Exception as exc:  # evidence is worth trying for, not worth failing the drill over
        log.warning("could not read the services' logs: %s", exc)
        return {}


def _target_facts(ctx: RunContext) -> dict[str, object]:
    """What ran the drill (engine, images and their ids on containers), read while it is up."""
    if not ctx.target_started:
        return {}
    try:
        return dict(ctx.target.describe())
    except Exception as exc:  # evidence is worth trying for, not worth failing the drill over
        log.warning("could not describe the target: %s", exc)
        return {}


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
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pytest(project_dir: Path, cucumber_path: Path, plugin: DrillPlugin) -> int:
    import pytest

    args = [
        str(binding_module()), f"--rootdir={project_dir}", "-p", "no:cacheprovider", "--import-mode=importlib",
        "-s", "-p", "no:terminal", "-p", "no:warnings", "-p", "no:logging",
        "-o", "addopts=", "-o", "testpaths=",
        "-W", "ignore::pytest.PytestAssertRewriteWarning", f"--cucumberjson={cucumber_path}",
    ]
    from drdrill.drill import bdd

    with warnings.catch_warnings():
        # Gherkin tags become pytest marks: a team's own tags are theirs to choose.
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return int(pytest.main(args, plugins=[plugin, bdd, *step_modules(project_dir)]))
