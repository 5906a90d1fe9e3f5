"""The bridge between Gherkin scenarios (run by pytest-bdd) and drills.

``drdrill run`` creates one :class:`RunContext` and hands pytest a :class:`DrillPlugin` bound
to it. The plugin provides the fixtures the step library in ``steps/`` uses, and records each
scenario's steps for the report; the run's report is written from the context afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from drdrill.core.clock import SystemClock
from drdrill.core.objectives import Objectives
from drdrill.core.report import Problem, Scenario, Step, StepStatus
from drdrill.core.timeline import Timeline
from drdrill.drill.outcome import DrillOutcome
from drdrill.drill.restore_test import RestoreTest
from drdrill.drill.session import Drill, Session
from drdrill.errors import RecoveryFailure, UsageError
from drdrill.settings import DrillSettings
from drdrill.targets.base import DrillTarget

log = logging.getLogger(__name__)

S = TypeVar("S", bound=Session)


@dataclass
class RunContext:
    """Everything one ``drdrill run`` shares between its scenarios."""

    drill_id: str
    target: DrillTarget
    settings: DrillSettings
    # --rto/--rpo from the command line win over what a scenario says.
    objective_overrides: dict[str, float] = field(default_factory=dict)
    workdir: Path | None = None
    timeline: Timeline = field(default_factory=lambda: Timeline(SystemClock()))
    outcomes: list[DrillOutcome] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    usage_errors: list[str] = field(default_factory=list)
    target_started: bool = False
    current_scenario: str | None = None
    scenarios_started: int = 0
    progress: Any = None  # callable(str) for the terminal, or None

    def objectives(self, scenario_value: Objectives | None = None) -> Objectives:
        base = scenario_value or self.settings.objectives
        return replace(base, **self.objective_overrides) if self.objective_overrides else base

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)
        else:
            log.info("%s", message)

    def progress_line(self, message: str) -> None:
        """How far a long call got: a line that the next one replaces, on a terminal."""
        if self.progress is not None:
            self.progress(message, transient=True)
        else:
            log.info("%s", message)


RUN_KEY = pytest.StashKey[RunContext]()


@pytest.fixture(scope="session")
def drill_run(request: pytest.FixtureRequest) -> RunContext:
    """The run's shared context; the target is started on first use."""
    run = request.config.stash[RUN_KEY]
    if not run.target_started:
        with run.timeline.phase("start-target", detail=run.target.name):
            run.say(f"starting the {run.target.name} target")
            run.target.start()
        run.target_started = True
    return run


def _session(drill_run: RunContext, kind: type[S]) -> Iterator[S]:
    """One session per scenario, on the run's target and timeline; its outcome is collected
    whatever happens to the scenario."""
    name = drill_run.current_scenario or "scenario"
    drill_run.scenarios_started += 1
    if drill_run.scenarios_started > 1:
        # Whatever the previous scenario broke (faults included) must not leak into this one.
        with drill_run.timeline.phase("heal-target", detail=name):
            drill_run.target.heal()
    settings = replace(drill_run.settings, objectives=drill_run.objectives())
    current = kind(drill_run.target, settings, drill_id=drill_run.drill_id, scenario=name,
                   timeline=drill_run.timeline, workdir=drill_run.workdir)
    current.progress = drill_run.progress_line
    try:
        yield current
    finally:
        current.stop_canaries()  # a scenario that failed before its disaster step
        try:
            drill_run.outcomes.append(current.outcome())
        except Exception as exc:
            drill_run.problems.append(Problem("measure", "error", f"measuring {name} failed: {exc}"))


@pytest.fixture
def drill(drill_run: RunContext) -> Iterator[Drill]:
    """A runbook drill (seed, back up, disaster, recover, verify)."""
    yield from _session(drill_run, Drill)


@pytest.fixture
def restore_test(drill_run: RunContext) -> Iterator[RestoreTest]:
    """A restore test of the platform's own backups, in place (``--target live``)."""
    yield from _session(drill_run, RestoreTest)


NOT_RUN = "not run: an earlier step failed"


class DrillPlugin:
    """A pytest plugin object bound to one run: hooks that record scenarios and steps.

    A step is "skipped" when the drill skipped its work (a fault scenario after its expected
    failure) or when pytest-bdd never ran it (after a failed step); never "passed"."""

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self._steps: dict[str, list[Step]] = {}
        self._step_started: dict[str, tuple[float, int | None]] = {}
        self._sessions: dict[str, Session] = {}

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[RUN_KEY] = self.run

    def pytest_bdd_before_scenario(self, request, feature, scenario):
        self.run.current_scenario = scenario.name
        self.run.say(f"scenario: {scenario.name}")

    # --- step bookkeeping for report.scenarios -------------------------------------------

    def pytest_bdd_before_step_call(self, request, feature, scenario, step, step_func, step_func_args):
        session = _session_of(step_func_args)
        if session is not None:
            self._sessions[scenario.name] = session
        self._step_started[scenario.name] = (time.monotonic(),
                                             session.steps_skipped if session is not None else None)
        self.run.say(f"  {step.keyword} {step.name}")

    def _record(self, scenario: Any, step: Any, status: StepStatus, error: str | None = None) -> None:
        started = self._step_started.pop(scenario.name, None)
        duration = round(time.monotonic() - started[0], 3) if started is not None else None
        self._steps.setdefault(scenario.name, []).append(
            Step(f"{step.keyword} {step.name}", status, duration, error, step.line_number))

    def pytest_bdd_after_step(self, request, feature, scenario, step, step_func, step_func_args):
        started = self._step_started.get(scenario.name)
        session = _session_of(step_func_args)
        skipped = started is not None and started[1] is not None and session is not None \
            and session.steps_skipped > started[1]
        self._record(scenario, step, "skipped" if skipped else "passed",
                     "skipped: the drill had already failed as expected" if skipped else None)

    def pytest_bdd_step_error(self, request, feature, scenario, step, step_func, step_func_args, exception):
        message = getattr(exception, "message", None) or f"{type(exception).__name__}: {exception}"
        text = " ".join(str(message).split())[:500]
        self._record(scenario, step, "failed", text)
        if isinstance(exception, UsageError):
            self.run.usage_errors.append(f"{scenario.name}: {step.keyword} {step.name}: {text}")
        elif not isinstance(exception, RecoveryFailure | AssertionError) and not self._recorded(exception, scenario):
            # Outside a measured phase (a step's own code, healing the target): the harness broke.
            self.run.problems.append(Problem(None, "error", f"{scenario.name}: {step.keyword} {step.name}: {text}",
                                             "the harness could not carry out this step",
                                             {"scenario": scenario.name}))

    def _recorded(self, exception: BaseException, scenario: Any) -> bool:
        """Whether a phase already recorded this failure as a problem (with its diagnosis)."""
        message = getattr(exception, "message", None)
        session = self._sessions.get(scenario.name)
        return message is not None and session is not None and any(p.summary == message for p in session.problems)

    def pytest_bdd_step_func_lookup_error(self, request, feature, scenario, step, exception):
        self.run.usage_errors.append(
            f"{feature.rel_filename}:{step.line_number}: no step definition matches '{step.keyword} {step.name}'")
        self._record(scenario, step, "undefined", "no step definition matches")

    def pytest_bdd_after_scenario(self, request, feature, scenario):
        steps = self._steps.pop(scenario.name, [])
        self._sessions.pop(scenario.name, None)
        recorded = {s.line for s in steps}
        steps += [Step(f"{st.keyword} {st.name}", "skipped", None, NOT_RUN, st.line_number)
                  for st in scenario.steps if st.line_number not in recorded]
        status = "failed" if any(s.status in ("failed", "undefined") for s in steps) else "passed"
        self.run.scenarios.append(Scenario(scenario.name, status, steps))

    def pytest_collectreport(self, report):
        if report.failed:
            text = str(report.longrepr).strip().splitlines()
            self.run.usage_errors.append(_collect_error(text))


def align_cucumber(cucumber: list[Any] | None, scenarios: list[Scenario]) -> list[Any] | None:
    """pytest-bdd marks every step after a failure "failed" in cucumber.json and knows nothing
    of steps the drill skipped: take each step's status from the report's own record."""
    if cucumber is None:
        return None
    by_name = {s.name: {st.line: st for st in s.steps} for s in scenarios}
    records = {s.name: s for s in scenarios}
    for feature in cucumber:
        for element in feature.get("elements", []):
            record = records.get(element.get("name"))
            if record is not None:  # the scenario's own figures, as every other format shows them
                element["description"] = "\n".join(filter(None, [str(element.get("description") or "").strip(),
                                                                 scenario_figures(record)]))
            steps = by_name.get(element.get("name"), {})
            for step in element.get("steps", []):
                ours = steps.get(step.get("line"))
                if ours is not None and ours.status != step.get("result", {}).get("status"):
                    step.setdefault("result", {})["status"] = ours.status
                    if ours.error:
                        step["result"]["error_message"] = ours.error
    return cucumber


def scenario_figures(scenario: Scenario) -> str:
    """One scenario's verdict, RTO/RPO against its own targets and tenants, as text."""
    from drdrill.core.durations import format_duration

    def dur(value: float | None) -> str:
        return "not measured" if value is None else format_duration(value)

    parts = [f"drdrill: {scenario.verdict or scenario.status}", f"RTO {dur(scenario.achieved.rto_seconds)}",
             f"RPO {dur(scenario.achieved.rpo_seconds)}"]
    if scenario.objectives is not None:
        parts[1] += f" (target {format_duration(scenario.objectives.rto_seconds)})"
        parts[2] += f" (target {format_duration(scenario.objectives.rpo_seconds)})"
    for tenant in scenario.tenants:
        restored = sum(i.docs_restored or 0 for i in tenant.indices)
        expected = sum(i.docs_expected or 0 for i in tenant.indices)
        parts.append(f"{tenant.org_id}/{tenant.namespace}: {len(tenant.indices)} indices, {restored} of {expected} "
                     f"documents, RPO {dur(tenant.rpo_seconds)}")
    return "; ".join(parts)


def _session_of(step_func_args: dict[str, Any]) -> Session | None:
    return next((v for v in step_func_args.values() if isinstance(v, Session)), None)


def _collect_error(lines: list[str]) -> str:
    """The informative line of a collection error (a feature file that does not parse)."""
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line.strip().removeprefix("E").strip()[:300]
    return (lines[-1] if lines else "collection failed").strip()[:300]
