"""What a scenario evidenced about its objectives, failing closed (pure).

A report is evidence: an objective is ``passed`` only where the check of it ran and passed. A
figure the drill measured but whose check never ran (its step skipped after an earlier failure)
is ``not evidenced``, with the reason; a measured figure beyond its target is ``failed``
whatever the steps did, since the recovery was attempted and missed it. The promises table,
junit.xml and the human formats all read this one rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drdrill.core.durations import format_duration
from drdrill.core.objectives import ObjectiveCheck, Objectives
from drdrill.core.report import Scenario, Step

ObjectiveStatus = Literal["passed", "failed", "not evidenced"]

# The words of the steps that check an objective ("Then the recovery time is within the
# objective", "And the data loss is within the objective"): the step library's, and what a
# team's own phrases for the same check would most likely say.
OBJECTIVE_STEP_WORDS: dict[str, tuple[str, ...]] = {
    "RTO": ("recovery time", "rto is within", "rto within"),
    "RPO": ("data loss", "rpo is within", "rpo within"),
}


@dataclass(frozen=True)
class ObjectiveResult:
    name: str  # "RTO" | "RPO"
    value: float | None
    target: float
    status: ObjectiveStatus
    reason: str

    @property
    def label(self) -> str:
        return f"{self.name} <= {format_duration(self.target)}"


def _checking_steps(name: str, steps: list[Step]) -> list[Step]:
    words = OBJECTIVE_STEP_WORDS[name]
    # A Given sets objectives ("Given the objectives are RTO 10m"): it checks nothing.
    return [st for st in steps if not st.text.startswith("Given") and any(w in st.text.lower() for w in words)]


def _not_run(steps: list[Step]) -> Step | None:
    return next((st for st in steps if st.status != "passed"), None)


def objective_results(scenario: Scenario, run_objectives: Objectives) -> list[ObjectiveResult]:
    """RTO and RPO of one scenario against its own objectives (the run's for a version 1
    report, which did not record a scenario's own)."""
    objectives = scenario.objectives or run_objectives
    out = []
    for name, value, target in (("RTO", scenario.achieved.rto_seconds, objectives.rto_seconds),
                                ("RPO", scenario.achieved.rpo_seconds, objectives.rpo_seconds)):
        out.append(_result(scenario, name, value, target))
    return out


def _result(scenario: Scenario, name: str, value: float | None, target: float) -> ObjectiveResult:
    check = ObjectiveCheck(name, value, target)

    def result(status: ObjectiveStatus, reason: str) -> ObjectiveResult:
        return ObjectiveResult(name, value, target, status, reason)

    if scenario.expected_failure:
        return result("not evidenced", "a fault scenario: its recovery was meant to fail")
    if value is None:
        return result("not evidenced", f"{name} not measured (the recovery did not complete)")
    if not check.met:
        return result("failed", check.reason)
    if not scenario.steps:
        return result("not evidenced", f"{check.reason}, but the scenario's steps were not recorded")
    checking = _checking_steps(name, scenario.steps)
    # Without a step of its own, the objective is checked by the scenario's verdict at its end:
    # then every step must have run.
    blocking = _not_run(checking) if checking else _not_run(scenario.steps)
    if blocking is None:
        return result("passed", check.reason)
    if blocking.status == "failed" and checking:
        return result("failed", blocking.error or f"{blocking.text} failed")
    why = f": {blocking.error}" if blocking.error else ""
    return result("not evidenced", f"measured {format_duration(value)}, but the step '{blocking.text}' "
                                   f"was {blocking.status}{why}")
