"""The floor under a restore (drdrill.core.cluster_state), replicas a cluster can hold, and the
restore's rules for primaries and replicas (drdrill.core.completeness): pure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drdrill.core.cluster_state import (
    ClusterStateWork,
    cluster_state_bound,
    cluster_state_work,
    default_replicas,
)
from drdrill.core.completeness import never_allocatable, primaries_started, restore_progress
from drdrill.core.timeline import Timeline


def _node(success: int, unchanged: int, failure: int = 0, scale: int = 1) -> dict[str, object]:
    """One node's discovery stats as ES 9.5 answers them (every field it sends)."""
    def published(count: int) -> dict[str, int]:
        return {"count": count, "computation_time_millis": 2 * count * scale,
                "publication_time_millis": 10 * count * scale, "context_construction_time_millis": 1 * count,
                "commit_time_millis": 4 * count, "completion_time_millis": 3 * count,
                "master_apply_time_millis": 2 * count, "notification_time_millis": 1 * count * scale}
    return {"name": "n", "discovery": {
        "cluster_state_queue": {"total": 0, "pending": 0, "committed": 0},
        "published_cluster_states": {"full_states": 1, "incompatible_diffs": 0, "compatible_diffs": 5},
        "cluster_state_update": {
            "unchanged": {"count": unchanged, "computation_time_millis": unchanged,
                          "notification_time_millis": unchanged},
            "success": published(success), "failure": published(failure)}}}


def test_the_floor_counts_what_each_state_cost_the_master_once():
    stats = {"nodes": {"a": _node(success=10, unchanged=4)}}
    work = cluster_state_work(stats)
    assert (work.published, work.failed, work.unchanged, work.states) == (10, 0, 4, 10)
    # computation 2 + publication 10 + notification 1 per state, and 1 + 1 per unchanged task; the
    # publication's parts (context, commit, completion, master apply) are inside its 10 ms.
    assert work.millis == pytest.approx(10 * 13 + 4 * 2)
    assert work.seconds == pytest.approx(0.138)


def test_every_node_counts_so_a_new_master_keeps_the_difference_right():
    before = cluster_state_work({"nodes": {"a": _node(10, 0), "b": _node(0, 0)}})
    # a lost its mastership; b was elected and published 5 more
    after = cluster_state_work({"nodes": {"a": _node(10, 0), "b": _node(5, 2, failure=1)}})
    spent = after - before
    assert (spent.published, spent.failed, spent.unchanged, spent.states) == (5, 1, 2, 6)
    assert spent.millis == pytest.approx(6 * 13 + 2 * 2)


def test_odd_answers_count_as_nothing():
    assert cluster_state_work({}) == ClusterStateWork()
    assert cluster_state_work({"nodes": {"a": {}, "b": {"discovery": {"cluster_state_update": None}}}}) \
        == ClusterStateWork()
    assert cluster_state_work({"nodes": {"a": {"discovery": {"cluster_state_update": {
        "success": {"count": "x", "computation_time_millis": True}}}}}}) == ClusterStateWork()


def test_the_floor_is_the_bottleneck_only_when_it_dominates():
    assert cluster_state_bound(28.0, 25.1)  # the 100-tenant restore issue 14 measured
    assert not cluster_state_bound(28.0, 10.0)
    assert not cluster_state_bound(28.0, 14.0)  # exactly half does not dominate
    assert not cluster_state_bound(None, 25.0) and not cluster_state_bound(0.0, 1.0)
    assert not cluster_state_bound(10.0, None)


def test_replicas_default_to_the_platforms_one_where_the_cluster_has_a_node_for_it():
    assert default_replicas(1) == 0  # a replica never shares its primary's node
    assert default_replicas(2) == 1
    assert default_replicas(3) == 1
    assert default_replicas(0) == 0


def test_primaries_started_ignores_replicas_and_complete_needs_them():
    copies = [(True, "STARTED", None), (False, "INITIALIZING", None)]
    assert primaries_started(copies, 1)
    assert restore_progress(copies, 1) == "pending"
    assert restore_progress([(True, "STARTED", None), (False, "STARTED", None)], 1) == "complete"
    assert not primaries_started([(True, "INITIALIZING", None)], 1)
    assert not primaries_started([], 0)


def test_a_replica_is_never_allocatable_only_when_every_node_refuses_it_for_good():
    assert never_allocatable("no", [("same_shard",)])  # one node, holding the primary
    assert never_allocatable("no", [("same_shard",), ("awareness", "disk_threshold")])
    # another node only refuses for now (a watermark, a primary still recovering): wait
    assert not never_allocatable("no", [("same_shard",), ("disk_threshold",)])
    assert not never_allocatable("no", [("replica_after_primary_active",)])
    assert not never_allocatable("throttled", [("same_shard",), ()])
    assert not never_allocatable("no", [])


def test_a_phase_measured_inside_another_is_recorded_with_its_bounds():
    timeline = Timeline()
    at = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    phase = timeline.add_phase("restore-replicas", (at, 10.0), (at, 12.5), detail="s", status="failed")
    assert timeline.phases == [phase]
    assert (phase.start_offset, phase.end_offset, phase.duration_seconds, phase.status) == (10.0, 12.5, 2.5, "failed")
    assert timeline.instant()[1] >= 0


def test_replicas_are_settings_of_the_data_and_of_the_restore_test():
    from drdrill.errors import ConfigError
    from drdrill.settings import DrillSettings, settings_from_dict

    default = DrillSettings()
    assert default.data.replicas is None and default.restore_test_replicas == 0
    chosen = settings_from_dict({"data": {"replicas": 2}, "restore_test": {"replicas": 1}}, default)
    assert chosen.data.replicas == 2 and chosen.restore_test_replicas == 1
    for bad in ({"data": {"replicas": -1}}, {"restore_test": {"replicas": 11}}, {"data": {"replicas": "1"}}):
        with pytest.raises(ConfigError):
            settings_from_dict(bad, default)


def _outcome(restore_settings: dict[str, object], notes: dict[str, object] | None = None):
    from drdrill.core.kdf import KdfSpec
    from drdrill.core.layout import Tenant
    from drdrill.core.objectives import Objectives
    from drdrill.drill.outcome import DrillOutcome

    return DrillOutcome(
        scenario="s", objectives=Objectives(60, 3600), timeline=Timeline(), problems=[], checks=[], backup=None,
        metadata_restores=[], snapshot_restores=[], expected_docs={}, rpo=None, rto_seconds=10.0,
        exposure_seconds=None, tenants=[Tenant("o", "n")], kdf=KdfSpec(), versions={}, harness_error=False,
        uncertain=False, restore_settings=restore_settings, notes=notes or {})


def test_the_report_names_the_cluster_state_floor_when_it_dominates_and_a_restore_tests_fidelity():
    from drdrill.drill.reporting import _weaknesses, cluster_state_floor
    from drdrill.drill.restore_phase import restore_test_notes
    from drdrill.drill.snapshot_restore import TenantRestores

    bound = _outcome({"seconds": 28.0, "cluster_state_seconds": 25.1, "cluster_states": 700})
    assert cluster_state_floor(bound) == (28.0, 25.1, 700)
    [weakness] = _weaknesses([bound])
    assert "cluster-state updates were the bottleneck" in weakness.summary and "700 cluster states" in weakness.summary
    assert cluster_state_floor(_outcome({"seconds": 28.0, "cluster_state_seconds": 3.0})) is None
    assert cluster_state_floor(_outcome({"seconds": 28.0})) is None  # no reading: nothing claimed
    # The restore test keeps its figures in its notes, with what makes it less faithful.
    run = TenantRestores([], [], 4, 20.0, 20.0, ClusterStateWork(published=90, millis=15_000.0))
    notes = restore_test_notes(run, replicas=0)
    assert notes["cluster_state_seconds"] == 15.0 and notes["cluster_states"] == 90
    found = {w.summary for w in _weaknesses([_outcome({}, {"restore": notes})])}
    assert any("no replica" in text for text in found) and any("bottleneck" in text for text in found)
    assert "fidelity" not in restore_test_notes(run, replicas=1)
