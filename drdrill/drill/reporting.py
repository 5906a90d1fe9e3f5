"""Turn the outcomes of a run's scenarios into the report model (DESIGN.md's contract)."""

from __future__ import annotations

import getpass
import os
import platform as pyplatform
from dataclasses import dataclass, field, replace
from datetime import datetime

from drdrill import __version__
from drdrill.adapters.crypto import RECOMMENDED_PBKDF2_ITERATIONS
from drdrill.core.cluster_state import cluster_state_bound
from drdrill.core.evidence_store import StoredRun
from drdrill.core.forecast import FORECAST_FACTOR, byte_rate, fit_model
from drdrill.core.objectives import Objectives, Verdict, judge, judge_expected_failure, judge_run
from drdrill.core.report import (
    Achieved,
    Evidence,
    Forecast,
    IndexResult,
    ObjectRef,
    Problem,
    Report,
    Scenario,
    SnapshotRef,
    TenantResult,
    TrendPoint,
    Weakness,
)
from drdrill.core.timeline import Timeline
from drdrill.drill import checks as chk
from drdrill.drill.controls import controls
from drdrill.drill.measurement import restore_sample
from drdrill.drill.outcome import DrillOutcome


@dataclass(frozen=True)
class RunInfo:
    drill_id: str
    target: str
    started_at: datetime
    finished_at: datetime
    objectives: Objectives
    incomplete: bool = False
    # From the history: the drills before this one (for the trend) and when the last finished.
    trend: list[TrendPoint] = field(default_factory=list)
    previous_drill_at: datetime | None = None
    # The target's own description (DrillTarget.describe), kept as evidence.
    target_facts: dict[str, object] = field(default_factory=dict)
    # The promise -> controls mapping used (None: drdrill's own) and what is recorded of it.
    controls_mapping: dict[str, list[str]] | None = None
    controls_source: dict[str, str] = field(default_factory=dict)
    # Who tested, in what role ([evidence] tester, independent): recorded as given, never guessed.
    tester: str | None = None
    independent: bool | None = None
    # The evidence store's runs, read before the run (None: no store configured).
    stored_runs: list[StoredRun] | None = None


def operator_name() -> str:
    explicit = os.environ.get("DRDRILL_OPERATOR")
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def scenario_verdict(outcome: DrillOutcome, scenario: Scenario | None) -> Verdict:
    """The core's judge, fed with what this scenario established and how its steps went."""
    steps_passed = scenario is not None and scenario.status == "passed"
    if outcome.expected_failure:
        return judge_expected_failure(
            failed=any(p.kind == "failed" for p in outcome.problems), expectation_checked=outcome.expectation_checked,
            steps_passed=steps_passed, harness_error=outcome.harness_error)
    verified = bool(outcome.checks) and all(c.passed for c in outcome.checks) and not any(
        p.kind == "failed" for p in outcome.problems)
    return judge(outcome.objectives, outcome.rto_seconds, outcome.rpo.worst if outcome.rpo else None, verified,
                 uncertain=outcome.uncertain, harness_error=outcome.harness_error, steps_passed=steps_passed)


def _worst(values: list[float | None]) -> float | None:
    """The worst value, to the millisecond (the report's resolution)."""
    known = [v for v in values if v is not None]
    return round(max(known), 3) if known else None


def build_report(run: RunInfo, outcomes: list[DrillOutcome], timeline: Timeline,
                 scenarios: list[Scenario] | None = None, extra_problems: list[Problem] | None = None) -> Report:
    """The report model; every verdict in it is the core judge's, every figure its scenario's."""
    by_name = {s.name: s for s in scenarios or []}
    judged: list[tuple[str, Verdict]] = []
    run_tenants: list[TenantResult] = []
    # What each outcome evidenced, read by the promises: its scenario's step record, or an empty
    # one (a scenario without a step record cannot be vouched for).
    evaluated: list[Scenario] = []
    for outcome in outcomes:
        scenario = by_name.get(outcome.scenario)
        verdict = scenario_verdict(outcome, scenario)
        judged.append((outcome.scenario, verdict))
        record = scenario if scenario is not None else Scenario(outcome.scenario, "not recorded")
        record.verdict, record.verdict_reasons = verdict.status, list(verdict.reasons)
        record.expected_failure = outcome.expected_failure
        record.achieved = Achieved(
            rto_seconds=_worst([outcome.rto_seconds]), rpo_seconds=_worst([outcome.rpo.worst if outcome.rpo
                                                                             else None]),
            backup_exposure_seconds=_worst([outcome.exposure_seconds]))
        record.objectives = outcome.objectives
        record.tenants = tenant_results(outcome)
        run_tenants += [replace(t, scenario=outcome.scenario) for t in record.tenants]
        evaluated.append(record)
    extra = list(extra_problems or [])
    verdict = judge_run(judged, errors=[p.summary for p in extra if p.kind == "error"],
                        failures=[p.summary for p in extra if p.kind == "failed"], incomplete=run.incomplete)
    objectives = run_objectives(outcomes, run.objectives)
    evidence = _evidence(outcomes, run.target_facts)
    evidence.notes["tested_by"] = {"tester": run.tester or "not recorded ([evidence] tester)",
                                   "independent": run.independent, "operator": evidence.operator,
                                   "host": pyplatform.node(), "environment": run.target}
    if run.controls_source:
        evidence.notes["controls_mapping"] = {**run.controls_source, "mapping": dict(run.controls_mapping or {})}
    evidence.versions["drdrill_code_sha256"] = code_digest()
    return Report(
        drill_id=run.drill_id, target=run.target, started_at=run.started_at, finished_at=run.finished_at,
        objectives=objectives,
        achieved=Achieved(
            rto_seconds=_worst([o.rto_seconds for o in outcomes]),
            rpo_seconds=_worst([o.rpo.worst if o.rpo else None for o in outcomes]),
            backup_exposure_seconds=_worst([o.exposure_seconds for o in outcomes]),
        ),
        verdict=verdict.status, verdict_reasons=verdict.reasons, phases=list(timeline.phases),
        events=list(timeline.events), tenants=run_tenants, evidence=evidence,
        problems=[p for o in outcomes for p in o.problems] + extra, weaknesses=_weaknesses(outcomes),
        scenarios=list(scenarios or []), forecast=_forecast(outcomes), incomplete=run.incomplete,
        controls=controls(outcomes, evaluated, objectives, target=run.target,
                          previous_drill_at=run.previous_drill_at, finished_at=run.finished_at,
                          mapping=run.controls_mapping, stored_runs=run.stored_runs,
                          this_run=StoredRun(run.drill_id, "", "", run.finished_at, verdict.status, target=run.target)),
        trend=list(run.trend),
    )


def run_objectives(outcomes: list[DrillOutcome], configured: Objectives) -> Objectives:
    """The run's objectives: its recovery scenarios' own when they all agree (a run of one
    "RTO 5m" scenario is a run against 5 minutes, not the runbook's 30), else the configured
    ones, and each scenario is shown against its own."""
    recoveries = [o for o in outcomes if not o.expected_failure] or outcomes
    distinct = {o.objectives for o in recoveries}
    return distinct.pop() if len(distinct) == 1 else configured


def tenant_results(outcome: DrillOutcome) -> list[TenantResult]:
    """One scenario's own tenants: its counts, its checks, its RPOs (to the millisecond, so
    that its worst tenant's is its RPO exactly)."""
    results = []
    restores = {r.tenant: r for r in outcome.snapshot_restores}
    for tenant in sorted(outcome.tenants, key=lambda t: t.key):
        entry = TenantResult(tenant.org_id, tenant.namespace)
        if tenant.key in outcome.index_results:  # the restore test's own record of what it restored
            entry.indices = list(outcome.index_results[tenant.key])
            entry.restore_seconds = outcome.tenant_restore_seconds.get(tenant.key)
        else:
            checks = [c for c in outcome.checks if c.tenant == tenant.key and c.name.startswith("index ")]
            entry.indices = [_index_result(index, docs, [c for c in checks if c.name.split()[1] == index])
                             for index, docs in sorted(outcome.expected_docs.get(tenant.key, {}).items())]
            restore = restores.get(tenant.key)
            if restore is not None:
                entry.restore_seconds = round(restore.fetch_seconds + restore.restore_seconds, 3)
        if outcome.rpo is not None:
            value = outcome.rpo.by_tenant.get(tenant.key)
            entry.rpo_seconds = None if value is None else round(value, 3)
            entry.rpo_by_store = {store: round(seconds, 3) for (key, store), seconds
                                  in sorted(outcome.rpo.by_store.items()) if key == tenant.key}
        results.append(entry)
    return results


def _index_result(index: str, expected: int, checks: list[chk.Check]) -> IndexResult:
    """An index is "passed" only when its count check ran and passed; "failed" when a check of it
    ran and failed; else "not verified": never a failure of a check the drill did not make."""
    counted = next((c for c in checks if "docs_restored" in c.evidence), None)
    restored = None if counted is None else int(counted.evidence["docs_restored"])
    failed = next((c for c in checks if not c.passed), None)
    if failed is not None:
        return IndexResult(index, expected, restored, status="failed", reason=f"{failed.name}: {failed.detail}")
    if counted is not None:
        return IndexResult(index, expected, restored, status="passed")
    return IndexResult(index, expected, None, status="not verified",
                       reason="this scenario did not restore or count this index")


def _evidence(outcomes: list[DrillOutcome], target_facts: dict[str, object]) -> Evidence:
    evidence = Evidence(operator=operator_name())
    if target_facts:
        evidence.notes["target"] = target_facts
    evidence.versions.update(drdrill=__version__, python=pyplatform.python_version())
    shards = []
    for outcome in outcomes:
        evidence.versions.update(outcome.versions)
        evidence.notes.update(outcome.notes)
        if outcome.recovery_throttle is not None:
            evidence.notes["indices.recovery.max_bytes_per_sec"] = outcome.recovery_throttle
        if outcome.restore_settings:
            evidence.notes.setdefault("restore", []).append({"scenario": outcome.scenario, **outcome.restore_settings})
        snapshot_throttles = sorted({s.snapshot_throttle for s in outcome.backup.snapshots if s.snapshot_throttle}
                                    if outcome.backup else set())
        if snapshot_throttles:
            evidence.notes["max_snapshot_bytes_per_sec"] = ", ".join(snapshot_throttles)
        for restore in outcome.snapshot_restores:
            org, ns = restore.tenant.split("/", 1)
            evidence.snapshots.append(SnapshotRef(restore.repository, restore.snapshot, restore.uuid, org, ns))
            shards += [{"tenant": restore.tenant, "index": s.index, "shard": s.shard, "kind": s.kind, "stage": s.stage,
                        "total_time_ms": s.total_time_ms, "bytes": s.bytes_recovered} for s in restore.shards]
        for meta in outcome.metadata_restores:
            evidence.objects.append(ObjectRef(meta.key, meta.sha256, meta.size_bytes))
        if outcome.backup is not None:
            evidence.notes.setdefault("backups_taken", []).append(outcome.backup.to_dict())
        evidence.notes.setdefault("checks", []).extend(
            {"scenario": outcome.scenario, "name": c.name, "passed": c.passed, "detail": c.detail}
            for c in outcome.checks)
        for meta in outcome.metadata_restores:
            evidence.notes.setdefault("metadata_restores", []).append(
                {"key": meta.key, "checksum_verified": meta.checksum_verified, "kdf": meta.kdf,
                 "seconds": round(meta.seconds, 3), "notes": meta.notes})
    if shards:
        evidence.notes["shard_recoveries"] = shards
    return evidence


def throttled_restore(outcome: DrillOutcome) -> tuple[float, float] | None:
    """(achieved bytes/s, throttle bytes/s) when Elasticsearch's recovery throttle, not the
    machine, bounded the restore: within 10% of ``indices.recovery.max_bytes_per_sec``."""
    limit = byte_rate(outcome.recovery_throttle)
    restored = sum(r.fetched_bytes for r in outcome.snapshot_restores)
    # Tenants restore side by side: the rate is over the wall time, not the tenants' summed times.
    seconds = outcome.snapshot_restore_wall_s or sum(r.restore_seconds for r in outcome.snapshot_restores)
    if not limit or seconds <= 0 or restored <= 0:
        return None
    rate = restored / seconds
    return (rate, limit) if rate >= 0.9 * limit else None


def throttled_backup(outcome: DrillOutcome) -> tuple[float, float, str] | None:
    """(achieved bytes/s, throttle bytes/s, the setting) when a snapshot ran at its
    repository's ``max_snapshot_bytes_per_sec`` (within 10%): the nightly window is then
    bounded by that setting."""
    for snap in outcome.backup.snapshots if outcome.backup else ():
        limit = byte_rate(snap.snapshot_throttle)
        if limit and snap.snapshot_seconds > 0 and snap.size_bytes / snap.snapshot_seconds >= 0.9 * limit:
            return snap.size_bytes / snap.snapshot_seconds, limit, str(snap.snapshot_throttle)
    return None


# Below this, fetch times are noise (connection set-up), not a store that bounds the restore.
STORE_BOUND_MIN_FETCH_S = 1.0


def store_bound_restore(outcome: DrillOutcome) -> tuple[float, float] | None:
    """(fetch seconds, restore seconds) when reading the tenants' snapshots out of the object
    store took longer than Elasticsearch took to restore them: the store (its bandwidth or
    latency from the recovery site), not Elasticsearch, bounds the RTO."""
    fetch = sum(r.fetch_seconds for r in outcome.snapshot_restores)
    restore = sum(r.restore_seconds for r in outcome.snapshot_restores)
    return (fetch, restore) if fetch >= STORE_BOUND_MIN_FETCH_S and fetch > restore else None


def cluster_state_floor(outcome: DrillOutcome) -> tuple[float, float, int] | None:
    """(restore seconds, cluster-state seconds, states) when the time Elasticsearch spent on
    cluster states dominated the restore phase (drdrill.core.cluster_state)."""
    settings = outcome.restore_settings or (outcome.notes.get("restore") if isinstance(
        outcome.notes.get("restore"), dict) else None) or {}
    restore, floor = settings.get("seconds"), settings.get("cluster_state_seconds")
    if restore is None or floor is None or not cluster_state_bound(restore, floor):
        return None
    return float(restore), float(floor), int(settings.get("cluster_states") or 0)


def _fidelity(outcome: DrillOutcome) -> list[str]:
    """What made a restore test less faithful than a production recovery (its own notes)."""
    restore = outcome.notes.get("restore")
    return [str(text) for text in restore.get("fidelity", [])] if isinstance(restore, dict) else []


def _weaknesses(outcomes: list[DrillOutcome]) -> list[Weakness]:
    found: dict[str, Weakness] = {}
    for outcome in outcomes:
        store_bound = store_bound_restore(outcome)
        if store_bound is not None:
            found["store-bound"] = Weakness(
                f"the object store was the bottleneck of the restore: fetching the snapshots took "
                f"{store_bound[0]:.1f}s, Elasticsearch restoring them {store_bound[1]:.1f}s",
                "measure the store's latency and bandwidth from the recovery site; a closer or faster copy of "
                "the backups shortens the RTO more than a larger cluster would")
        backup_throttled = throttled_backup(outcome)
        if backup_throttled is not None:
            found["snapshot-throttle"] = Weakness(
                f"a snapshot ran at {backup_throttled[0] / 2**20:.0f} MiB/s, at its repository's "
                f"max_snapshot_bytes_per_sec={backup_throttled[2]}: at production size the nightly backup's "
                "duration (and so the data a disaster during it loses) is bounded by that setting",
                "raise max_snapshot_bytes_per_sec on the tenants' repositories (and re-run the drill)")
        floor = cluster_state_floor(outcome)
        if floor is not None:
            found["cluster-state-bound"] = Weakness(
                f"Elasticsearch's cluster-state updates were the bottleneck of the restore: the master spent "
                f"{floor[1]:.1f}s of the {floor[0]:.1f}s restore phase computing, publishing and applying "
                f"{floor[2]} cluster states (_nodes/stats discovery.cluster_state_update); they run one at a time, "
                "so more tenants side by side cannot restore faster",
                "fewer, larger indices per tenant or fewer states per restore (e.g. one restore request for "
                "several indices) lower the floor; a faster master disk shortens each state's commit")
        again = outcome.restore_settings.get("restored_again") or {}
        if again:
            found["restored-again"] = Weakness(
                f"{len(again)} restored index(es) lost every copy with an Elasticsearch node during the restore and "
                f"were restored again from their snapshot ({', '.join(sorted(again))}): a primary is alone until "
                "its replica is rebuilt, and the RTO carries the second restore",
                "a node lost during a recovery costs a second restore of what it held alone; the restore-replicas "
                "phase is the window of that risk")
        for text in _fidelity(outcome):
            found[f"fidelity: {text}"] = Weakness(text, "set [restore_test] replicas to the platform's own "
                                                        "number_of_replicas to measure the replica rebuild too")
        throttled = throttled_restore(outcome)
        if throttled is not None:
            found["throttle"] = Weakness(
                f"the snapshot restore ran at {throttled[0] / 2**20:.0f} MiB/s, at Elasticsearch's recovery "
                f"throttle indices.recovery.max_bytes_per_sec={outcome.recovery_throttle}: at production size the "
                "RTO is bounded by that setting, not by the machine",
                "raise indices.recovery.max_bytes_per_sec for recoveries (and re-run the drill)")
        for meta in outcome.metadata_restores:
            if meta.kdf_weak:
                found["kdf"] = Weakness(
                    f"metadata dumps are encrypted with {meta.kdf}, the runbook's `openssl enc -k` default: one "
                    "hash round turns the password into the key, so a stolen dump is cheap to brute-force",
                    f"encrypt with `openssl enc -aes-256-cbc -pbkdf2 -iter {RECOMMENDED_PBKDF2_ITERATIONS}` "
                    f"(drdrill backup --pbkdf2 uses {RECOMMENDED_PBKDF2_ITERATIONS} iterations)")
            if not meta.checksum_verified:
                found["checksum"] = Weakness(
                    f"{meta.key} had no checksum record: tampering or truncation is only caught by decryption "
                    "and the dump's trailer", "write a SHA-256 record next to every dump")
    return list(found.values())


def _forecast(outcomes: list[DrillOutcome]) -> Forecast | None:
    """The RTO of the platform ten times larger (tenants and data), and no further, from the
    recovered scenarios' own measurements: fitted across them when they restored different
    sizes, else from the first one's phase breakdown (drdrill.core.forecast)."""
    samples = [s for s in map(restore_sample, outcomes) if s is not None]
    if not samples:
        return None
    model = fit_model(samples)
    largest = max(samples, key=lambda s: (s.snapshot_bytes, s.tenants))
    tenants, nbytes = FORECAST_FACTOR * largest.tenants, FORECAST_FACTOR * largest.snapshot_bytes
    terms = model.terms(tenants, nbytes)
    return Forecast(largest.snapshot_bytes, largest.restore_wall_s, model.fixed_s, nbytes,
                    model.predict(tenants, nbytes), basis=model.basis, valid_up_to_bytes=nbytes,
                    sample_tenants=largest.tenants, target_tenants=tenants, per_tenant_seconds=model.per_tenant_s,
                    seconds_per_byte=model.seconds_per_byte, terms={k: round(v, 3) for k, v in terms.items()},
                    dominant=model.dominant(tenants, nbytes))


def code_digest() -> str:
    """SHA-256 over drdrill's own files as installed (sorted paths and contents): which code
    produced the report, whether installed from a wheel or a checkout."""
    import hashlib
    from pathlib import Path

    import drdrill

    root = Path(drdrill.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".j2", ".toml")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
