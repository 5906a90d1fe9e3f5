"""The runbook's promises, each with what this drill proved about it (pure: from the scenarios'
outcomes and the history). A promise a drill did not exercise is listed as "not evidenced",
never left out: an auditor must see what was not shown as clearly as what was."""

from __future__ import annotations

import hashlib
import logging
import tomllib
from dataclasses import replace
from datetime import datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drdrill.core.durations import format_duration
from drdrill.core.evidence_store import QUARTER, RESTORE_TEST_WINDOW, StoredRun, aged_promise
from drdrill.core.evidenced import ObjectiveResult, objective_results
from drdrill.core.objectives import Objectives
from drdrill.core.report import Control, ControlStatus, Scenario
from drdrill.errors import UsageError

if TYPE_CHECKING:
    from drdrill.drill.outcome import DrillOutcome

log = logging.getLogger(__name__)

# Package data of drdrill.drill (pyproject: [tool.setuptools.package-data] "drdrill.drill").
STANDARDS_FILE = "standards.toml"


def _worst(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _objective(promise: str, value: float | None, target: float, what: str, where: list[str]) -> Control:
    if value is None:
        return Control(promise, "not evidenced", f"no scenario measured the {what}")
    status: ControlStatus = "passed" if value <= target else "failed"
    return Control(promise, status, f"worst {what} {format_duration(value)} against {format_duration(target)} "
                                    f"({', '.join(where)})")


def objective_controls(scenarios: list[Scenario], objectives: Objectives, name: str, what: str) -> list[Control]:
    """One promise per target the scenarios were held to ("RTO <= 5m 00s" for a scenario that
    asked for 5 minutes, never the runbook's 30): passed only when every scenario held to it
    evidenced it, failed when one missed it, else not evidenced, with each scenario's reason."""
    by_target: dict[float, list[tuple[Scenario, ObjectiveResult]]] = {}
    for scenario in scenarios:
        if scenario.expected_failure:
            continue
        result = next(r for r in objective_results(scenario, objectives) if r.name == name)
        by_target.setdefault(result.target, []).append((scenario, result))
    if not by_target:
        target = objectives.rto_seconds if name == "RTO" else objectives.rpo_seconds
        return [Control(f"{name} <= {format_duration(target)}", "not evidenced", f"no scenario measured the {what}")]
    out = []
    for target, results in sorted(by_target.items()):
        promise = f"{name} <= {format_duration(target)}"
        failed = [(s, r) for s, r in results if r.status == "failed"]
        unproven = [(s, r) for s, r in results if r.status == "not evidenced"]
        if failed:
            out.append(Control(promise, "failed", "; ".join(f"{s.name}: {r.reason}" for s, r in failed)))
        elif unproven:
            out.append(Control(promise, "not evidenced", "; ".join(f"{s.name}: {r.reason}" for s, r in unproven)))
        else:
            worst = max(r.value or 0.0 for _, r in results)
            out.append(Control(promise, "passed", f"worst {what} {format_duration(worst)} against "
                               f"{format_duration(target)} ({', '.join(s.name for s, _ in results)})"))
    return out


def controls(outcomes: list[DrillOutcome], scenarios: list[Scenario], objectives: Objectives, *, target: str,
             previous_drill_at: datetime | None, finished_at: datetime,
             mapping: dict[str, list[str]] | None = None, stored_runs: list[StoredRun] | None = None,
             this_run: StoredRun | None = None) -> list[Control]:
    """``scenarios``: every outcome's scenario with its figures, objectives and step record.
    ``stored_runs``: the evidence store's runs (None: no store; the cadence is the local
    history's), with ``this_run`` as it ends; the promises that age are read from them."""
    recoveries = [o for o in outcomes if not o.expected_failure]
    restore_tests = [o for o in recoveries if "restore_test" in o.notes]
    keyed = [("rto", c) for c in objective_controls(scenarios, objectives, "RTO", "recovery time")]
    keyed += [("rpo", c) for c in objective_controls(
        scenarios, objectives, "RPO", "data loss" if not restore_tests
        else "data loss (restore test: the backup exposure bound)")]
    out = [_nightly(restore_tests, objectives, target), _retention(recoveries), _encryption(recoveries),
           _isolation(recoveries), _cadence(previous_drill_at, finished_at) if stored_runs is None
           else _aged(DRILLED_PROMISE, stored_runs, this_run, finished_at, QUARTER)]
    keyed += zip(("nightly-backup", "retention", "encryption", "isolation", "cadence"), out, strict=True)
    # Without a store only this run can evidence it (a live restore test that passed).
    keyed.append(("restore-test", _aged(f"restore tested within {RESTORE_TEST_WINDOW.days} days", stored_runs,
                                        this_run, finished_at, RESTORE_TEST_WINDOW, kinds=("live",))))
    mapping = standards() if mapping is None else mapping
    return [replace(c, key=key, standards=list(mapping.get(key, []))) for key, c in keyed]


def standards() -> dict[str, list[str]]:
    """Each promise's controls in DORA, ISO/IEC 27001, SOC 2 and NIST SP 800-53, from the
    mapping shipped with drdrill (``standards.toml``)."""
    mapping, recorded = load_mapping(None)
    if not mapping:  # a packaging bug must not cost the drill its report
        log.warning("%s: the promises carry no controls", recorded["source"])
    return mapping


PROMISE_KEYS = ("rto", "rpo", "nightly-backup", "retention", "encryption", "isolation", "cadence", "restore-test")


def _standards(text: str, where: str = STANDARDS_FILE) -> dict[str, list[str]]:
    table = tomllib.loads(text).get("controls", {})
    if not isinstance(table, dict) or not all(isinstance(v, list) and all(isinstance(x, str) for x in v)
                                              for v in table.values()):
        raise ValueError(f"{where}: [controls] maps each promise to a list of strings")
    unknown = sorted(set(table) - set(PROMISE_KEYS))
    if unknown:
        raise ValueError(f"{where}: [controls] names no promise {', '.join(unknown)} "
                         f"(known: {', '.join(PROMISE_KEYS)})")
    return {str(k): list(v) for k, v in table.items()}


def load_mapping(path: Path | None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The promise -> controls mapping a run uses: a team's own file (``[evidence]
    controls_file``, which replaces drdrill's), else the one shipped with drdrill; with what the
    report records of it (its source and SHA-256). A bad team file is a usage error."""
    if path is None:
        try:
            text = files("drdrill.drill").joinpath(STANDARDS_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}, {"source": f"drdrill's {STANDARDS_FILE} (missing from this installation)"}
        source = f"drdrill's {STANDARDS_FILE}"
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"[evidence] controls_file {path}: {exc}") from None
        source = str(path)
    try:
        mapping = _standards(text, source)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"[evidence] controls_file: {exc}", hint="[controls] rto = [\"DORA Art. 11\", ...]") from None
    return mapping, {"source": source, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _nightly(restore_tests: list[DrillOutcome], objectives: Objectives, target: str) -> Control:
    # The nightly job: only the platform's own backups show that it ran (a drill takes its own).
    if restore_tests:
        exposure = _worst([o.exposure_seconds for o in restore_tests])
        return _objective("nightly backup at 02:00 ran (backup exposure <= RPO)", exposure,
                          objectives.rpo_seconds, "age of the newest complete recovery point",
                          [o.scenario for o in restore_tests])
    return Control("nightly backup at 02:00 ran (backup exposure <= RPO)", "not evidenced",
                   f"on the {target} target the drill took its own backup; the restore test of the "
                   "platform's backups (--target live) shows it")


def _retention(outcomes: list[DrillOutcome]) -> Control:
    """From the live restore test (the platform's own nights) or a drill that simulated nights
    on the local target and applied the policy (then also: nothing older is kept)."""
    promise = "retention: a recovery point for each of the last 7 days"
    found: list[tuple[DrillOutcome, dict[str, Any]]] = []
    for outcome in outcomes:
        notes = outcome.notes.get("restore_test", outcome.notes)
        if notes.get("retention") is not None:
            found.append((outcome, notes["retention"]))
    if not found:
        return Control(promise, "not evidenced", "no scenario read the recovery points of the last 7 days")
    gaps: dict[str, int] = {}
    older: dict[str, list[str]] = {}
    for _outcome, retention in found:
        gaps.update(retention.get("tenants_missing_days") or {})
        older.update(retention.get("older_than_policy") or {})
    simulated = [r["simulated_nights"] for _o, r in found if r.get("simulated_nights")]
    how = (f" ({simulated[0]} nights simulated on the local target, the policy applied)" if simulated
           else " (the platform's own backups)")
    if older:
        return Control(promise, "failed", "kept past the policy: " + ", ".join(
            f"{k}: {', '.join(v[:2])}" for k, v in sorted(older.items())[:3]) + how)
    if gaps:
        return Control(promise, "warning", f"{len(gaps)} tenant(s) lack a complete snapshot on some day: "
                       + ", ".join(f"{k} ({v} day(s))" for k, v in sorted(gaps.items())[:5]) + how)
    return Control(promise, "passed", "a complete recovery point on each of the last 7 days for every tenant"
                   + (" and metadata scope, none older" if simulated else "") + how)


def _encryption(outcomes: list[DrillOutcome]) -> Control:
    promise = "metadata dumps encrypted with AES-256 (openssl enc -aes-256-cbc)"
    proofs = [(m, m.encryption) for o in outcomes for m in o.metadata_restores if m.encryption is not None]
    if not proofs:
        return Control(promise, "not evidenced", "no scenario decrypted a metadata dump")
    bad = [(m, e) for m, e in proofs if not (e.salted_header and e.refused_wrong_password)]
    if bad:
        restore, proof = bad[0]
        return Control(promise, "failed", f"{restore.key}: header Salted__ {proof.salted_header}, "
                       f"unreadable without the password {proof.refused_wrong_password}")
    return Control(promise, "passed", f"{len(proofs)} dump(s): 'Salted__' header, decrypted with the password "
                   "and not with another (" + ", ".join(sorted({m.kdf for m, _ in proofs})) + ")")


def _isolation(outcomes: list[DrillOutcome]) -> Control:
    promise = "tenant path isolation (a tenant's credentials reach only its own path)"
    checks = [c for o in outcomes for c in o.checks if c.evidence.get("isolation")]
    if not checks:
        return Control(promise, "not evidenced", "no scenario tried a tenant's credentials on other paths")
    failed = [c for c in checks if not c.passed]
    if failed:
        return Control(promise, "failed", f"{failed[0].name}: {failed[0].detail}")
    tenants = {c.tenant for c in checks}
    how = "wrote and read" if any("writes and reads" in c.name for c in checks) else "listed and read (read only)"
    return Control(promise, "passed", f"{len(tenants)} tenants' own credentials {how} their own paths and got "
                   "AccessDenied on the other tenants' paths tried and on metadata/")


def _aged(promise: str, stored: list[StoredRun] | None, this_run: StoredRun | None, now: datetime,
          window: timedelta, kinds: tuple[str, ...] | None = None) -> Control:
    """A promise read from the evidence store (this run included): passed, failed, or not
    evidenced when the evidence is missing or older than its window (core's one rule)."""
    aged = aged_promise(promise, [*(stored or []), *([this_run] if this_run is not None else [])], now, window,
                        kinds)
    source = " (the evidence store and this run)" if stored is not None else \
        " (this run only: no evidence store, [evidence] store_bucket)"
    return Control(aged.promise, aged.status, aged.evidence + source)


DRILLED_PROMISE = "drilled once a quarter"


def _cadence(previous: datetime | None, now: datetime) -> Control:
    promise = DRILLED_PROMISE
    if previous is None:
        return Control(promise, "not evidenced", "no earlier drill in the history")
    gap = now - previous
    status: ControlStatus = "passed" if gap <= QUARTER else "warning"
    return Control(promise, status, f"the previous drill finished {gap.days} day(s) earlier "
                                    f"({previous.date().isoformat()})")
