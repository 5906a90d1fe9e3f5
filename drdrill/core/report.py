"""The drill report model: the ``report.json`` contract of DESIGN.md as dataclasses.

``report.json`` is the source of truth; the other formats are rendered from it. ``to_dict``
always passes through :func:`redact`, so no serialisation path can carry a secret.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal, get_args

from drdrill.core.clock import from_iso, to_iso
from drdrill.core.objectives import Objectives, VerdictStatus
from drdrill.core.timeline import Event, Phase

# 2: scenarios[].tenants holds each scenario's own TenantResults (not names) and
# scenarios[].objectives its own targets; every run-level tenant row names its scenario; an
# index says whether its count was verified. Version 1 reports still load (upgraded on reading).
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
VERDICTS: tuple[str, ...] = get_args(VerdictStatus)
ProblemKind = Literal["failed", "error", "warning"]
PROBLEM_KINDS: tuple[str, ...] = get_args(ProblemKind)


class ReportFormatError(ValueError):
    """A report dict/JSON does not follow the contract."""


# --- redaction ----------------------------------------------------------------------------

# Key words that mark a secret, matched against whole words of a key ("db_password",
# "secretKey", "access-key-secret"), so that e.g. "verifications_passed" is not masked.
_SECRET_WORDS = {"password", "passwd", "passphrase", "pwd", "secret", "token", "credential", "credentials"}
_SECRET_PAIRS = {("api", "key"), ("private", "key")}
# The password part runs to the *last* "@" of the word, so a password containing an
# unescaped "@" or "/" is masked whole instead of leaking its tail (erring on masking more).
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):\S*@")
_KV_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd)\s*=\s*)(?:'[^']*'|\S+)", re.IGNORECASE)
MASK = "***"


def _is_secret_key(key: str) -> bool:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).lower().replace("-", "_").split("_")
    return bool(_SECRET_WORDS.intersection(words)) or any(pair in _SECRET_PAIRS for pair in pairwise(words))


def redact_text(text: str) -> str:
    """Mask passwords inside DSNs/URLs (``postgresql://u:pw@h`` → ``postgresql://u:***@h``)
    and libpq keyword strings (``password=pw`` → ``password=***``)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)


def redact(obj: Any) -> Any:
    """A copy of ``obj`` with values under secret-named keys masked and passwords in strings masked."""
    if isinstance(obj, dict):
        return {
            k: (MASK if isinstance(k, str) and _is_secret_key(k) and v not in (None, "") else redact(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


# --- the model ----------------------------------------------------------------------------


def _opt_iso(dt: datetime | None) -> str | None:
    return None if dt is None else to_iso(dt)


@dataclass
class Achieved:
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    backup_exposure_seconds: float | None = None


IndexStatus = Literal["passed", "failed", "not verified"]


@dataclass
class IndexResult:
    name: str
    docs_expected: int | None
    docs_restored: int | None
    # The live index's count when its copy was verified (a restore test beside a busy platform).
    docs_live: int | None = None
    # Whether a check of this index ran and how it went: "not verified" is a check the drill
    # never made (e.g. a metadata-only drill does not restore indices), never a failure.
    status: IndexStatus | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status is None:  # a version 1 report, or a caller that only has the counts
            # No count on either side (never restored, or none recorded): nothing was compared.
            unknown = self.docs_restored is None or self.docs_expected is None
            self.status = "not verified" if unknown else "passed" if self.ok else "failed"

    @property
    def ok(self) -> bool:
        return self.docs_expected is not None and self.docs_expected == self.docs_restored


@dataclass
class TenantResult:
    org_id: str
    namespace: str
    indices: list[IndexResult] = field(default_factory=list)
    rpo_seconds: float | None = None
    # Loss per store ("elasticsearch", "postgresql"); rpo_seconds is the worst of these.
    rpo_by_store: dict[str, float] = field(default_factory=dict)
    # Fetching and restoring this tenant's snapshot (where the drill measured it on its own).
    restore_seconds: float | None = None
    # The scenario this row belongs to (run-level rows; a scenario's own rows need not say).
    scenario: str | None = None

    @property
    def key(self) -> str:
        return f"{self.org_id}/{self.namespace}"

    def to_dict(self) -> dict[str, Any]:
        # Fields only some drills measure are written where they were measured.
        out: dict[str, Any] = {
            "org_id": self.org_id,
            "namespace": self.namespace,
            "indices": [{k: v for k, v in vars(i).items() if k not in ("docs_live", "reason") or v is not None}
                        for i in self.indices],
            "rpo_seconds": self.rpo_seconds,
            "rpo_by_store": dict(self.rpo_by_store),
        }
        if self.restore_seconds is not None:
            out["restore_seconds"] = self.restore_seconds
        if self.scenario is not None:
            out["scenario"] = self.scenario
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TenantResult:
        return cls(
            org_id=d["org_id"],
            namespace=d["namespace"],
            indices=[IndexResult(**i) for i in d.get("indices", [])],
            rpo_seconds=d.get("rpo_seconds"),
            rpo_by_store=dict(d.get("rpo_by_store") or {}),
            restore_seconds=d.get("restore_seconds"),
            scenario=d.get("scenario"),
        )


@dataclass
class SnapshotRef:
    repository: str
    name: str
    uuid: str | None = None
    org_id: str | None = None
    namespace: str | None = None


@dataclass
class ObjectRef:
    key: str
    sha256: str
    size_bytes: int | None = None
    bucket: str | None = None


@dataclass
class Evidence:
    """Which recovery points were used, by whom, with which tools: what an auditor asks."""

    operator: str | None = None
    snapshots: list[SnapshotRef] = field(default_factory=list)
    objects: list[ObjectRef] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)  # tool/server -> version
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "snapshots": [vars(s).copy() for s in self.snapshots],
            "objects": [vars(o).copy() for o in self.objects],
            "versions": dict(self.versions),
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        return cls(
            operator=d.get("operator"),
            snapshots=[SnapshotRef(**s) for s in d.get("snapshots", [])],
            objects=[ObjectRef(**o) for o in d.get("objects", [])],
            versions=dict(d.get("versions") or {}),
            notes=dict(d.get("notes") or {}),
        )


@dataclass
class Problem:
    phase: str | None
    kind: ProblemKind
    summary: str
    diagnosis: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Weakness:
    """Something that worked but should not be relied on, e.g. a dump encrypted with the legacy
    ``-md md5`` key derivation."""

    summary: str
    recommendation: str | None = None


@dataclass
class Forecast:
    sample_bytes: int
    sample_restore_seconds: float
    fixed_seconds: float
    target_bytes: int
    rto_seconds: float
    model: str = "fixed + tenants x per_tenant + bytes x seconds_per_byte"
    # What the figure rests on, and how far it may be trusted (never past 10x what was measured).
    basis: str = ""
    valid_up_to_bytes: int | None = None
    sample_tenants: int = 0
    target_tenants: int = 0
    per_tenant_seconds: float = 0.0
    seconds_per_byte: float = 0.0
    # The forecast's three terms at the target, and the one that dominates it.
    terms: dict[str, float] = field(default_factory=dict)
    dominant: str = ""


StepStatus = Literal["passed", "failed", "skipped", "undefined"]


@dataclass
class Step:
    text: str
    status: StepStatus
    duration_seconds: float | None = None
    error: str | None = None
    line: int | None = None  # in the feature file: how cucumber.json's steps are matched


@dataclass
class Scenario:
    name: str
    # How its steps went: "failed" when a step failed (a fault scenario's injected failure is
    # not a failed step: its own Then steps check it).
    status: str
    steps: list[Step] = field(default_factory=list)
    # The scenario's verdict (the core's judge) and why; "expected failure, diagnosed" for a
    # fault scenario that failed exactly as its steps said it would.
    verdict: VerdictStatus | None = None
    verdict_reasons: list[str] = field(default_factory=list)
    expected_failure: bool = False
    # The scenario's own figures, targets and tenants: a report is read scenario by scenario,
    # and no figure of one scenario may show under another (they may reuse tenant names).
    achieved: Achieved = field(default_factory=lambda: Achieved())
    tenants: list[TenantResult] = field(default_factory=list)
    objectives: Objectives | None = None  # None: a version 1 report (the run's were used)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "steps": [vars(st).copy() for st in self.steps],
                "verdict": self.verdict, "verdict_reasons": list(self.verdict_reasons),
                "expected_failure": self.expected_failure, "achieved": vars(self.achieved).copy(),
                "tenants": [t.to_dict() for t in self.tenants],
                "objectives": None if self.objectives is None else _objectives_dict(self.objectives)}

    @classmethod
    def from_dict(cls, s: dict[str, Any], run_tenants: list[TenantResult] | None = None) -> Scenario:
        """``run_tenants``: a version 1 report's run-level rows, which its scenarios named."""
        tenants = []
        for t in s.get("tenants") or []:
            if isinstance(t, dict):
                tenants.append(TenantResult.from_dict(t))
            else:  # version 1: a name, whose row was the run's (the last scenario's figures)
                tenants += [replace(r, scenario=None) for r in run_tenants or [] if r.key == t]
        objectives = s.get("objectives")
        return cls(s["name"], s["status"], [Step(**st) for st in s.get("steps", [])], s.get("verdict"),
                   list(s.get("verdict_reasons") or []), bool(s.get("expected_failure", False)),
                   Achieved(**(s.get("achieved") or {})), tenants,
                   None if objectives is None else Objectives(**objectives))


def _objectives_dict(objectives: Objectives) -> dict[str, float]:
    return {"rto_seconds": objectives.rto_seconds, "rpo_seconds": objectives.rpo_seconds}


ControlStatus = Literal["passed", "failed", "warning", "not evidenced"]


@dataclass
class Control:
    """One promise of the runbook and what this drill proved about it."""

    promise: str
    status: ControlStatus
    evidence: str  # what was measured or checked, or why it was not
    key: str | None = None  # the promise's stable id ("rto", "isolation", ...), for mappings
    # The controls of standards (DORA, ISO/IEC 27001, SOC 2, NIST) that this promise evidences.
    standards: list[str] = field(default_factory=list)


@dataclass
class TrendPoint:
    """A drill of the history, for the trend chart (the newest last)."""

    drill_id: str
    finished_at: str | None
    verdict: str
    rto_seconds: float | None
    rpo_seconds: float | None


@dataclass
class Report:
    drill_id: str
    target: str
    started_at: datetime
    finished_at: datetime | None
    objectives: Objectives
    achieved: Achieved
    verdict: VerdictStatus
    verdict_reasons: list[str] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    tenants: list[TenantResult] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)
    problems: list[Problem] = field(default_factory=list)
    weaknesses: list[Weakness] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)
    forecast: Forecast | None = None
    controls: list[Control] = field(default_factory=list)
    trend: list[TrendPoint] = field(default_factory=list)  # the drills before this one
    # True when the drill was interrupted or crashed before all phases ran.
    incomplete: bool = False
    previous_report_sha256: str | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        raw = {
            "schema_version": self.schema_version,
            "drill_id": self.drill_id,
            "target": self.target,
            "started_at": to_iso(self.started_at),
            "finished_at": _opt_iso(self.finished_at),
            "objectives": _objectives_dict(self.objectives),
            "achieved": vars(self.achieved).copy(),
            "verdict": self.verdict,
            "verdict_reasons": list(self.verdict_reasons),
            "phases": [p.to_dict() for p in self.phases],
            "events": [e.to_dict() for e in self.events],
            "tenants": [t.to_dict() for t in self.tenants],
            "evidence": self.evidence.to_dict(),
            "problems": [vars(p).copy() for p in self.problems],
            "weaknesses": [vars(w).copy() for w in self.weaknesses],
            "scenarios": [s.to_dict() for s in self.scenarios],
            "forecast": None if self.forecast is None else vars(self.forecast).copy(),
            "controls": [vars(c).copy() for c in self.controls],
            "trend": [vars(p).copy() for p in self.trend],
            "incomplete": self.incomplete,
            "previous_report_sha256": self.previous_report_sha256,
        }
        return redact(raw)

    def to_json(self) -> str:
        """Deterministic text: the same report always gives the same bytes (and SHA-256)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        try:
            return cls._from_dict(d)
        except ReportFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReportFormatError(f"malformed report: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> Report:
        try:
            data = json.loads(text)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ReportFormatError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ReportFormatError("not a JSON object")
        return cls.from_dict(data)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> Report:
        if d.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise ReportFormatError(f"unsupported schema_version {d.get('schema_version')!r}")
        if d["verdict"] not in VERDICTS:
            raise ReportFormatError(f"unknown verdict {d['verdict']!r}")
        problems = [Problem(**p) for p in d.get("problems", [])]
        for p in problems:
            if p.kind not in PROBLEM_KINDS:
                raise ReportFormatError(f"unknown problem kind {p.kind!r}")
        forecast = d.get("forecast")
        tenants = [TenantResult.from_dict(t) for t in d.get("tenants", [])]
        return cls(
            drill_id=d["drill_id"],
            target=d["target"],
            started_at=from_iso(d["started_at"]),
            finished_at=None if d.get("finished_at") is None else from_iso(d["finished_at"]),
            objectives=Objectives(**d["objectives"]),
            achieved=Achieved(**d["achieved"]),
            verdict=d["verdict"],
            verdict_reasons=list(d.get("verdict_reasons", [])),
            phases=[Phase.from_dict(p) for p in d.get("phases", [])],
            events=[Event.from_dict(e) for e in d.get("events", [])],
            tenants=tenants,
            evidence=Evidence.from_dict(d.get("evidence") or {}),
            problems=problems,
            weaknesses=[Weakness(**w) for w in d.get("weaknesses", [])],
            scenarios=[Scenario.from_dict(s, tenants) for s in d.get("scenarios", [])],
            forecast=None if forecast is None else Forecast(**forecast),
            controls=[Control(**c) for c in d.get("controls", [])],
            trend=[TrendPoint(**p) for p in d.get("trend", [])],
            incomplete=bool(d.get("incomplete", False)),
            previous_report_sha256=d.get("previous_report_sha256"),
            # Read into the current model: what is written again is the current schema.
            schema_version=SCHEMA_VERSION,
        )
