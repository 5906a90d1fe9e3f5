"""The platform's nightly backup job as its scheduler records it (Kubernetes: the CronJob
`es-backup` and its Jobs), and the one judgement of its health. Pure: the Kubernetes adapter
fills the model, the restore test asks :func:`backup_job_findings`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

JobOutcome = Literal["succeeded", "failed", "running"]


@dataclass(frozen=True)
class JobRun:
    """One Job of the CronJob (scheduled or made from it by hand)."""

    name: str
    outcome: JobOutcome
    started: datetime | None
    finished: datetime | None
    reason: str = ""
    log_tail: str = ""  # the failed pod's last log lines: what the job itself said

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome,
                "started": self.started.isoformat() if self.started else None,
                "finished": self.finished.isoformat() if self.finished else None, "reason": self.reason,
                **({"log_tail": self.log_tail} if self.log_tail else {})}


@dataclass(frozen=True)
class BackupJobHealth:
    name: str
    schedule: str
    suspended: bool
    last_schedule: datetime | None
    last_successful: datetime | None  # the CronJob's status: scheduled runs only
    runs: tuple[JobRun, ...] = ()

    @property
    def newest_run(self) -> JobRun | None:
        started = [r for r in self.runs if r.started is not None]
        return max(started, key=lambda r: r.started or datetime.min) if started else None

    @property
    def last_success(self) -> datetime | None:
        """The newest successful run's end, scheduled or by hand."""
        ends = [r.finished for r in self.runs if r.outcome == "succeeded" and r.finished is not None]
        if self.last_successful is not None:
            ends.append(self.last_successful)
        return max(ends) if ends else None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "schedule": self.schedule, "suspended": self.suspended,
                "last_schedule": self.last_schedule.isoformat() if self.last_schedule else None,
                "last_successful": self.last_success.isoformat() if self.last_success else None,
                "runs": [r.to_dict() for r in self.runs]}


@dataclass(frozen=True)
class Finding:
    """``failed``: the nightly backup is not doing its job; ``warning``: it recovered since."""

    kind: Literal["failed", "warning"]
    summary: str
    diagnosis: str = ""


def backup_job_findings(health: BackupJobHealth, now: datetime, rpo_s: float) -> list[Finding]:
    """What is wrong with the nightly backup job: suspended, its newest run failed, no success
    within the RPO (failures); an older run failed (warning)."""
    out: list[Finding] = []
    if health.suspended:
        out.append(Finding("failed", f"backup CronJob {health.name} is suspended: no nightly backup runs",
                           "its spec.suspend is true"))
    newest = health.newest_run
    if newest is not None and newest.outcome == "failed":
        out.append(Finding("failed", f"the newest backup Job {newest.name} failed ({newest.reason or 'no reason'})",
                           f"its last log line: {_last_line(newest.log_tail)}" if newest.log_tail.strip() else ""))
    success = health.last_success
    if success is None:
        out.append(Finding("failed", f"backup CronJob {health.name} has no successful run on record"))
    elif now - success > timedelta(seconds=rpo_s):
        out.append(Finding("failed", f"the last successful backup Job ended {success.isoformat()}, longer ago "
                                     f"than the RPO"))
    for run in health.runs:
        if run.outcome == "failed" and run is not newest:
            out.append(Finding("warning", f"backup Job {run.name} failed ({run.reason or 'no reason'})",
                               _last_line(run.log_tail)))
    return out


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
