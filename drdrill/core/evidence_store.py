"""The evidence store's layout and what its runs evidence (pure: keys, bytes and times in,
records and promises out).

Each run with ``[evidence] store_bucket`` keeps two objects under one prefix of its own::

    runs/<environment>/<finished YYYYMMDDTHHMMSSZ>_<drill id>/report.json
    runs/<environment>/<finished YYYYMMDDTHHMMSSZ>_<drill id>/pack.tar.gz

so that a listing of ``runs/<environment>/`` is in time order, and a drill id finds its run with
one listing. Everything read back from the store is untrusted input: a key that is not of this
layout is skipped, a report.json that is not a report is listed as a malformed run with its
cause, never trusted and never a crash.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from drdrill.core.clock import from_iso
from drdrill.core.ownership import DRILL_ID

RUNS_PREFIX = "runs/"
REPORT_NAME = "report.json"
PACK_NAME = "pack.tar.gz"
# A report.json larger than this is not one drdrill wrote (a 1,000-tenant report is ~2 MiB).
MAX_REPORT_BYTES = 32 * 2**20

# The windows of the promises the store evidences: a daily restore test may miss a night or
# two (8 days: the alert rule's), and a drill is promised once a quarter.
RESTORE_TEST_WINDOW = timedelta(days=8)
QUARTER = timedelta(days=92)

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", re.ASCII)
_RUN_KEY = re.compile(r"runs/([A-Za-z0-9][A-Za-z0-9_.-]{0,62})/(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z-[0-9a-f]{6})/"
                      r"(report\.json|pack\.tar\.gz)", re.ASCII)
_VERDICTS = ("passed", "failed", "error")


def environment_segment(environment: str) -> str:
    """The environment's name as one safe key segment (anything else becomes ``-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", environment)[:63].strip(".-") or "unnamed"
    return cleaned if _SEGMENT.fullmatch(cleaned) and ".." not in cleaned else "unnamed"


def run_prefix(environment: str, finished_at: datetime, drill_id: str) -> str:
    if not DRILL_ID.fullmatch(drill_id):
        raise ValueError(f"{drill_id!r} is not a drill id")
    stamp = finished_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{RUNS_PREFIX}{environment_segment(environment)}/{stamp}_{drill_id}/"


@dataclass(frozen=True)
class RunKey:
    environment: str
    stamp: str
    drill_id: str
    name: str  # report.json | pack.tar.gz

    @property
    def prefix(self) -> str:
        return f"{RUNS_PREFIX}{self.environment}/{self.stamp}_{self.drill_id}/"


def parse_run_key(key: str) -> RunKey | None:
    """A key of the layout, or None for anything else (foreign objects are not runs)."""
    found = _RUN_KEY.fullmatch(key)
    if found is None or ".." in found.group(1):
        return None
    return RunKey(*found.groups())


@dataclass(frozen=True)
class StoredRun:
    """One run of the store, as its report.json says (``problem``: why it could not be read)."""

    drill_id: str
    environment: str
    prefix: str
    finished_at: datetime | None
    verdict: str  # passed | failed | error | "malformed"
    target: str | None = None
    rto_seconds: float | None = None
    backup_exposure_seconds: float | None = None
    point: str | None = None  # the recovery point restored (the restore test's policy and night)
    has_pack: bool = False
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"drill_id": self.drill_id, "environment": self.environment, "verdict": self.verdict,
                "rto_seconds": self.rto_seconds, "backup_exposure_seconds": self.backup_exposure_seconds,
                "point": self.point, "finished_at": None if self.finished_at is None else
                self.finished_at.isoformat().replace("+00:00", "Z"), "target": self.target,
                "pack": self.prefix + PACK_NAME if self.has_pack else None, "problem": self.problem}


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _point(notes: object) -> str | None:
    if not isinstance(notes, dict):
        return None
    point = notes.get("point")
    if point is None and isinstance(notes.get("restore_test"), dict):
        point = notes["restore_test"].get("point")
    if not isinstance(point, dict) or not isinstance(point.get("policy"), str):
        return None
    night = point.get("night")
    text = str(point["policy"])[:20] + (f" ({str(night)[:32]})" if isinstance(night, str) else "")
    return "".join(c for c in text if c.isprintable())


def malformed_run(key: RunKey, has_pack: bool, why: str) -> StoredRun:
    """A run whose report.json could not be read, listed with the cause (never trusted)."""
    return StoredRun(key.drill_id, key.environment, key.prefix, _stamp_time(key.stamp), "malformed",
                     has_pack=has_pack, problem=why)


def oversized(size: int) -> str | None:
    return f"report.json is {size} bytes, more than a report drdrill writes" if size > MAX_REPORT_BYTES else None


def read_run(key: RunKey, report: bytes, has_pack: bool) -> StoredRun:
    """The run of ``key`` from its report.json bytes; a malformed one names its cause."""
    def malformed(why: str) -> StoredRun:
        return malformed_run(key, has_pack, why)

    too_big = oversized(len(report))
    if too_big:
        return malformed(too_big)
    try:
        data = json.loads(report)
    except ValueError as exc:
        return malformed(f"report.json is not JSON: {str(exc)[:120]}")
    if not isinstance(data, dict):
        return malformed("report.json is not a JSON object")
    if data.get("drill_id") != key.drill_id:
        return malformed("report.json names another drill than its key")
    verdict = data.get("verdict")
    if verdict not in _VERDICTS:
        return malformed(f"report.json has no known verdict ({str(verdict)[:20]!r})")
    try:
        finished = from_iso(data["finished_at"]) if isinstance(data.get("finished_at"), str) else None
    except ValueError:
        return malformed("report.json's finished_at is not a time")
    achieved: dict[str, Any] = data["achieved"] if isinstance(data.get("achieved"), dict) else {}
    evidence: dict[str, Any] = data["evidence"] if isinstance(data.get("evidence"), dict) else {}
    target = data.get("target")
    return StoredRun(key.drill_id, key.environment, key.prefix, finished or _stamp_time(key.stamp), str(verdict),
                     target=target[:20] if isinstance(target, str) else None,
                     rto_seconds=_seconds(achieved.get("rto_seconds")),
                     backup_exposure_seconds=_seconds(achieved.get("backup_exposure_seconds")),
                     point=_point(evidence.get("notes")), has_pack=has_pack)


def _stamp_time(stamp: str) -> datetime | None:
    try:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def newest_first(runs: list[StoredRun]) -> list[StoredRun]:
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(runs, key=lambda r: (r.finished_at or epoch, r.drill_id), reverse=True)


PromiseStatus = Literal["passed", "failed", "not evidenced"]


@dataclass(frozen=True)
class AgedPromise:
    promise: str
    status: PromiseStatus
    evidence: str


def aged_promise(promise: str, runs: list[StoredRun], now: datetime, window: timedelta,
                 kinds: tuple[str, ...] | None = None) -> AgedPromise:
    """A promise that evidence ages out of: ``passed`` when a run of ``kinds`` (targets; None:
    any) passed within ``window`` of ``now``; ``failed`` when runs within it exist and none
    passed; ``not evidenced`` when there is none, or only older ones (stale evidence is no pass)."""
    relevant = [r for r in runs if r.verdict != "malformed" and r.finished_at is not None
                and (kinds is None or r.target in kinds)]
    recent = newest_first([r for r in relevant if r.finished_at is not None
                           and timedelta(0) <= now - r.finished_at <= window])
    days = f"{window.total_seconds() / 86400:g} days"
    what = "run" if kinds is None else f"{' or '.join(kinds)} run"
    passing = [r for r in recent if r.verdict == "passed"]
    if passing:
        newest = passing[0]
        age = (now - newest.finished_at).total_seconds() / 86400 if newest.finished_at else 0.0
        after = f"; the newest run since, {recent[0].drill_id}, {recent[0].verdict}" if recent[0] is not newest else ""
        return AgedPromise(promise, "passed", f"{newest.drill_id} passed {age:.1f} day(s) ago, within {days}{after}")
    if recent:
        return AgedPromise(promise, "failed", f"{len(recent)} {what}(s) within {days}, none passed (newest "
                                              f"{recent[0].drill_id}: {recent[0].verdict})")
    if relevant:
        newest = newest_first(relevant)[0]
        return AgedPromise(promise, "not evidenced", f"the newest {what}, {newest.drill_id}, is older than {days}")
    return AgedPromise(promise, "not evidenced", f"no {what}")
