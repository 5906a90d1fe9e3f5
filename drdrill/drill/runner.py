"""``drdrill run``: carry out a plan (:mod:`drdrill.drill.plan`): start the target, run the
scenarios with pytest-bdd, write the report, and map the verdict to the exit status."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drdrill.core.objectives import Verdict
from drdrill.core.report import Problem, Report, redact_text
from drdrill.drill.bdd import DrillPlugin, RunContext, align_cucumber
from drdrill.drill.features import (
    binding_module,
    step_modules,
)
from drdrill.drill.plan import RunPlan, RunRequest, describe_plan, plan_run
from drdrill.drill.reporting import RunInfo, build_report
from drdrill.errors import EXIT_USAGE, UsageError
from drdrill.settings import Paths, StackSettings
from drdrill.targets import check_destruction_allowed
from drdrill.targets.base import DrillTarget

log = logging.getLogger(__name__)

__all__ = ["RunPlan", "RunRequest", "RunResult", "execute", "plan_run", "run"]


@dataclass(frozen=True)
class RunResult:
    report: Report | None
    report_dir: Path | None
    exit_status: int


def run(request: RunRequest, paths: Paths, stack_settings: StackSettings, progress=None) -> RunResult:
    return execute(plan_run(request, paths, stack_settings), progress)


def execute(plan: RunPlan, progress=None) -> RunResult:
    """Start the target, run the scenarios, stop the target, write the report."""
    from drdrill.report.writer import write_report

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
                                      previous_drill_at=plan.previous_drill_at, target_facts=target_facts,
                                      controls_mapping=plan.controls_mapping, controls_source=plan.controls_source,
                                      tester=plan.settings.tester, independent=plan.settings.independent,
                                      stored_runs=plan.stored_runs),
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
    # Also when the target did not start: its services' logs are what explains that.
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


def _check_existing_store(target: DrillTarget) -> None:
    """Drilling on an existing stack: its backup store must be the platform's layout."""
    from drdrill.backups.catalog import check_bucket_layout

    check_bucket_layout(target.platform(request_timeout_s=10).store)  # StackNotUp when it is not running


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
