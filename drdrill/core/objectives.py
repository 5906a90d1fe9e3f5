"""Measurements and the verdict, exactly as DESIGN.md defines them.

* Achieved RTO = T_recovered − T_disaster.
* Achieved RPO = T_disaster − T_newest_surviving_write, per tenant and store, reported per
  tenant (worst of its stores) and overall (worst of all).
* Backup exposure = T_disaster − start of the newest complete backup set.
* A drill passes only if every verification passed and RTO ≤ target and RPO ≤ target.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from drdrill.core.durations import format_duration
from drdrill.errors import EXIT_FAILED, EXIT_HARNESS, EXIT_PASSED, ConfigError

VerdictStatus = Literal["passed", "failed", "error"]

# Runbook targets: RTO 30 minutes, RPO 24 hours.
DEFAULT_RTO_SECONDS = 30 * 60.0
DEFAULT_RPO_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Objectives:
    rto_seconds: float = DEFAULT_RTO_SECONDS
    rpo_seconds: float = DEFAULT_RPO_SECONDS

    def __post_init__(self) -> None:
        if self.rto_seconds <= 0 or self.rpo_seconds < 0:
            raise ConfigError("objectives", f"RTO {self.rto_seconds:g}s, RPO {self.rpo_seconds:g}s: the RTO must be "
                              "more than zero and the RPO not negative")


def _span(start: datetime | float, end: datetime | float) -> float:
    """``end − start`` in seconds, for two datetimes or two monotonic offsets (never mixed)."""
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds()
    if isinstance(start, datetime) or isinstance(end, datetime):
        raise TypeError("cannot subtract a wall time and a monotonic offset")
    return float(end) - float(start)


def achieved_rto(t_disaster: datetime | float, t_recovered: datetime | float) -> float:
    """Seconds from disaster to recovery.

    Pass timeline monotonic offsets where available (durations come from the monotonic clock);
    aware datetimes work too. Recovery before the disaster is a harness bug, not a fast drill.
    """
    rto = _span(t_disaster, t_recovered)
    if rto < 0:
        raise ValueError(f"T_recovered precedes T_disaster by {-rto:.3f}s")
    return rto


TenantKey = str  # "org/ns"
StoreKey = tuple[TenantKey, str]  # (tenant, store), store e.g. "elasticsearch" | "postgresql"


@dataclass
class RpoResult:
    by_store: dict[StoreKey, float]
    by_tenant: dict[TenantKey, float]
    worst: float | None
    # (tenant, store) pairs where no canary write survived at all.
    nothing_survived: list[StoreKey] = field(default_factory=list)


def achieved_rpo(
    t_disaster: datetime,
    newest_surviving_writes: Mapping[StoreKey, datetime | None],
    *,
    canary_started_at: datetime,
) -> RpoResult:
    """Data actually lost, per (tenant, store), per tenant (worst of its stores) and overall.

    When no canary write survived in a store, everything the canary wrote since it started is
    gone, so the loss is ``t_disaster − canary_started_at``: the most the drill can prove was
    lost. It is a lower bound of the true loss, and never 0 — reporting 0 would turn "we lost
    everything" into a perfect score.

    A surviving write stamped after T_disaster (the canary raced the disaster injection, or
    small clock skew between hosts) means nothing was lost: it counts as 0, not negative.
    """
    by_store: dict[StoreKey, float] = {}
    nothing: list[StoreKey] = []
    for key, newest in newest_surviving_writes.items():
        if newest is None:
            nothing.append(key)
            loss = (t_disaster - canary_started_at).total_seconds()
        else:
            loss = (t_disaster - newest).total_seconds()
        by_store[key] = max(loss, 0.0)
    by_tenant: dict[TenantKey, float] = {}
    for (tenant, _store), loss in by_store.items():
        by_tenant[tenant] = max(loss, by_tenant.get(tenant, 0.0))
    worst = max(by_store.values()) if by_store else None  # nothing measured is not "no loss"
    return RpoResult(by_store=by_store, by_tenant=by_tenant, worst=worst, nothing_survived=nothing)


def backup_exposure(t_disaster: datetime, newest_complete_backup_started_at: datetime) -> float:
    """How old the newest complete backup set was at T_disaster: the upper bound of RPO from
    the backup side (a backup only holds what existed when it *started*)."""
    exposure = (t_disaster - newest_complete_backup_started_at).total_seconds()
    if exposure < 0:
        raise ValueError("the backup set started after T_disaster; it cannot be a recovery point")
    return exposure


@dataclass(frozen=True)
class Verdict:
    status: VerdictStatus
    reasons: list[str]

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def exit_status(self) -> int:
        return {"passed": EXIT_PASSED, "failed": EXIT_FAILED, "error": EXIT_HARNESS}[self.status]


def _vs(value: float, target: float) -> tuple[str, str]:
    shown, goal = format_duration(value), format_duration(target)
    if shown == goal and value != target:
        shown += f" ({value:.3f}s)"  # "30m 00s exceeds target 30m 00s" would read as nonsense
    return shown, goal


@dataclass(frozen=True)
class ObjectiveCheck:
    """One objective against its target. Unmeasured is not met."""

    name: str
    value: float | None
    target: float

    @property
    def met(self) -> bool:
        return self.value is not None and self.value <= self.target

    @property
    def reason(self) -> str:
        if self.value is None:
            return f"{self.name} not measured; an unmeasured objective is not met"
        shown, goal = _vs(self.value, self.target)
        return f"{self.name} {shown} {'within' if self.met else 'exceeds'} target {goal}"


def judge(
    objectives: Objectives,
    rto: float | None,
    rpo: float | None,
    verifications_passed: bool,
    uncertain: bool = False,
    harness_error: bool = False,
    steps_passed: bool = True,
) -> Verdict:
    """A scenario's verdict with one-line reasons.

    "error" when the harness could not carry out the drill (its measurements cannot be
    trusted either way). Otherwise "failed" unless everything is positively known to be
    good: a timeout, a partial restore or a count mismatch is ``uncertain`` and never passes.
    """
    failures: list[str] = []
    if harness_error:
        failures.append("the harness could not carry out the drill")
    if not verifications_passed:
        failures.append("a verification failed")
    if uncertain:
        failures.append("the outcome is uncertain (timeout, partial restore or count mismatch)")
    if not steps_passed:
        failures.append("a scenario step failed")
    checks = [ObjectiveCheck("RTO", rto, objectives.rto_seconds), ObjectiveCheck("RPO", rpo, objectives.rpo_seconds)]
    failures += [c.reason for c in checks if not c.met]
    if harness_error:
        return Verdict("error", failures)
    return Verdict("failed", failures) if failures else Verdict("passed", [c.reason for c in checks])


EXPECTED_FAILURE_DIAGNOSED = "expected failure, diagnosed"


def judge_expected_failure(*, failed: bool, expectation_checked: bool, steps_passed: bool,
                           harness_error: bool) -> Verdict:
    """A fault scenario (like pytest's strict xfail): it passes when the recovery failed and its
    own steps confirmed where and why; it fails when the recovery succeeded or the failure was
    not the expected one."""
    if harness_error:
        return Verdict("error", ["the harness could not carry out the drill"])
    if not failed:
        return Verdict("failed", ["the recovery was expected to fail, and it did not"])
    if not expectation_checked:
        return Verdict("failed", ["no step checked in which phase and why the recovery failed"])
    if not steps_passed:
        return Verdict("failed", ["the recovery failed, but not in the expected phase or with the expected "
                                  "diagnosis"])
    return Verdict("passed", [EXPECTED_FAILURE_DIAGNOSED])


def judge_run(scenario_verdicts: list[tuple[str, Verdict]], *, errors: list[str] | None = None,
              failures: list[str] | None = None, incomplete: bool = False) -> Verdict:
    """The run's verdict from its scenarios' and from what went wrong outside any scenario
    (``errors``: the harness broke; ``failures``: e.g. a step failed outside a measured phase).
    The worst wins; no scenario at all is an error, never a pass."""
    reasons = [f"{name}: {r}" for name, v in scenario_verdicts if not v.passed for r in v.reasons]
    errors, failures = list(errors or []), list(failures or [])
    if incomplete:
        errors.insert(0, "the drill was interrupted before it finished")
    if not scenario_verdicts:
        errors.append("no drill scenario ran")
    if errors or any(v.status == "error" for _, v in scenario_verdicts):
        return Verdict("error", list(dict.fromkeys(errors + reasons)))
    if failures or any(v.status == "failed" for _, v in scenario_verdicts):
        return Verdict("failed", list(dict.fromkeys(failures + reasons)))
    return Verdict("passed", [f"{name}: {r}" for name, v in scenario_verdicts for r in v.reasons])
