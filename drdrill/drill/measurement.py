"""A scenario's figures, computed from its timeline and canaries by the core's pure functions
(DESIGN.md's definitions), and everything the report needs from it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drdrill.core.forecast import MEASURABLE_FETCH_BYTES, MEASURABLE_SHARD_BYTES, RestoreSample, byte_rate
from drdrill.core.objectives import RpoResult, achieved_rpo, achieved_rto, backup_exposure
from drdrill.core.report import Problem
from drdrill.drill.canary import STORES, canary_index, newest_surviving
from drdrill.drill.outcome import DrillOutcome
from drdrill.drill.verification import canary_window
from drdrill.errors import DrdrillError

if TYPE_CHECKING:
    from drdrill.drill.outcome import DrillRecord


def measure(drill: DrillRecord) -> DrillOutcome:
    # Scenarios of a run share a timeline: without a disaster of its own, an earlier
    # scenario's is not this one's.
    window = drill.timeline.recovery_window() if drill.disaster_kind is not None else None
    rto = rpo = exposure = None
    harness_error = any(p.kind == "error" for p in drill.problems)
    if window is not None:
        disaster, recovered = window
        if recovered is not None:
            rto = achieved_rto(disaster.offset, recovered.offset)  # monotonic: immune to clock steps
        if drill.backup is not None:
            starts = [s.started_at for s in drill.backup.snapshots if s.started_at]
            starts += [m.dump_began for m in drill.backup.metadata]
            if starts:
                exposure = backup_exposure(disaster.at, min(starts))
                _flag_exposure(drill, exposure)
        if recovered is not None and drill.canary_log is not None and drill.canary_log.started_at:
            try:
                rpo = achieved_rpo(disaster.at, newest_surviving(drill.platform, drill.settings.tenants),
                                   canary_started_at=drill.canary_log.started_at)
            except DrdrillError as exc:
                if not any(p.phase == "measure" for p in drill.problems):
                    drill.problems.append(Problem("measure", "error", f"RPO could not be measured: {exc.message}",
                                                  evidence={"scenario": drill.scenario}))
                harness_error = True
    return DrillOutcome(
        scenario=drill.scenario, objectives=drill.settings.objectives, timeline=drill.timeline,
        problems=list(drill.problems), checks=list(drill.checks), backup=drill.backup,
        metadata_restores=list(drill.metadata_restores), snapshot_restores=list(drill.snapshot_restores),
        expected_docs=drill.expected_docs, rpo=rpo, rto_seconds=rto, exposure_seconds=exposure,
        tenants=list(drill.settings.tenants), kdf=drill.settings.kdf, versions=dict(drill.versions),
        recovery_throttle=drill.recovery_throttle, harness_error=harness_error, uncertain=_uncertain(drill, rpo),
        expected_failure=drill.expect_failure, expectation_checked=drill.expectation_checked,
        snapshot_restore_wall_s=sum(r.seconds for r in drill.restore_runs) if drill.restore_runs else None,
        restore_settings=_restore_settings(drill), notes=dict(drill.notes),
    )


def _restore_settings(drill: DrillRecord) -> dict[str, Any]:
    if not drill.restore_runs:
        return {}
    runs = drill.restore_runs
    seconds = sum(r.seconds for r in runs)
    primaries = sum(r.primaries_seconds if r.primaries_seconds is not None else r.seconds for r in runs)
    floor: dict[str, Any] = {}
    readings = [r.cluster_states for r in runs if r.cluster_states is not None]
    if len(readings) == len(runs):  # a run without its reading would make the floor look lower
        # The floor under the restore: what Elasticsearch spent on cluster states meanwhile.
        floor = {"cluster_state_seconds": round(sum(w.seconds for w in readings), 3),
                 "cluster_states": sum(w.states for w in readings),
                 "cluster_state_tasks_unchanged": sum(w.unchanged for w in readings)}
    # Indices restored a second time (a primary lost with its node): the auditor sees which, and why.
    again = {f"{r.tenant} {index}": why
             for run in runs for r in run.restored for index, why in r.restored_again.items()}
    return {"concurrency": max(r.concurrency for r in runs), "seconds": round(seconds, 3),
            "primaries_seconds": round(primaries, 3), "replicas_seconds": round(seconds - primaries, 3),
            "replicas": max((r.replicas for run in runs for r in run.restored), default=0), **floor,
            **({"restored_again": again} if again else {}),
            **drill.restore_limits,
            **{f"{key} changed": change for key, change in drill.restore_limits_changed.items()}}


def _flag_exposure(drill: DrillRecord, exposure: float) -> None:
    target = drill.settings.objectives.rpo_seconds
    if exposure > target and not any(p.phase == "backup-exposure" for p in drill.problems):
        drill.problems.append(Problem(
            "backup-exposure", "failed",
            f"the newest complete backup set was {exposure:.1f}s old at the disaster, beyond the RPO target "
            f"of {target:g}s",
            "backup exposure (T_disaster - start of the newest complete backup set) exceeds the RPO target: "
            "no backup within the RPO window", {"scenario": drill.scenario}))


def _uncertain(drill: DrillRecord, rpo: RpoResult | None) -> bool:
    """RPO rests on the canaries: if the writer failed, or a lost store had no canary
    acknowledged before its backup, the figure cannot be trusted, and the drill cannot pass."""
    log_ = drill.canary_log
    if log_ is None or drill.disaster_kind is None:
        return False
    if log_.errors or (rpo is not None and rpo.nothing_survived):
        return True
    for tenant in drill.lost_tenants or drill.settings.tenants:
        for store in STORES:
            window = canary_window(drill, store, tenant)
            if window is not None and log_.acked_before(tenant.key, store, window[0]) == 0:
                return True
    return False


def restore_sample(outcome: DrillOutcome) -> RestoreSample | None:
    """What the RTO forecast learns from a recovered scenario: its phase breakdown and the
    rates the data moved at (Elasticsearch's measured on the data shards, not the canaries)."""
    if not outcome.snapshot_restores or outcome.rto_seconds is None or outcome.expected_failure:
        return None
    snapshot_bytes = sum(s.size_bytes for s in outcome.backup.snapshots) if outcome.backup else 0
    wall = outcome.snapshot_restore_wall_s
    if wall is None or snapshot_bytes <= 0:
        return None
    canaries = {canary_index(tenant) for tenant in outcome.tenants}
    # Rates only from copies big enough to show one: a small one's time is its fixed costs.
    data_shards = [shard for r in outcome.snapshot_restores for shard in r.shards
                   if shard.index not in canaries and shard.bytes_recovered >= MEASURABLE_SHARD_BYTES]
    fetches = [r for r in outcome.snapshot_restores if r.fetched_bytes >= MEASURABLE_FETCH_BYTES]
    return RestoreSample(
        rto_s=outcome.rto_seconds, restore_wall_s=wall, tenants=len(outcome.snapshot_restores),
        snapshot_bytes=snapshot_bytes,
        fetch_s=sum(r.fetch_seconds for r in fetches), fetched_bytes=sum(r.fetched_bytes for r in fetches),
        copy_s=sum(shard.copy_time_ms for shard in data_shards) / 1000,
        copied_bytes=sum(shard.bytes_recovered for shard in data_shards),
        throttle_bps=byte_rate(outcome.recovery_throttle),
        replica_s=float(outcome.restore_settings.get("replicas_seconds") or 0.0),
        replicas=int(outcome.restore_settings.get("replicas") or 0))
