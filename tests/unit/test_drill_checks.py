"""Pure parts of the drill: verification checks, the canary log's windows, report assembly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drdrill.adapters.crypto import KdfSpec
from drdrill.core.clock import FakeClock
from drdrill.core.layout import Tenant
from drdrill.core.objectives import Objectives, achieved_rpo
from drdrill.core.report import Scenario, Step
from drdrill.core.timeline import Timeline
from drdrill.drill import checks as chk
from drdrill.drill.canary import CanaryLog
from drdrill.drill.outcome import DrillOutcome
from drdrill.drill.reporting import RunInfo, build_report, scenario_verdict

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def test_index_checks_need_existence_green_and_exact_counts():
    observed = {"a": chk.IndexObservation("green", 10), "b": chk.IndexObservation("yellow", 5)}
    results = {c.name: c.passed for c in chk.check_indices("o/n", {"a": 10, "b": 5, "c": 1}, observed)}
    assert results == {"index a is green": True, "index a document count": True, "index b is green": False,
                       "index b document count": True, "index c exists": False}
    off_by_one = chk.check_indices("o/n", {"a": 11}, observed)
    assert [c.passed for c in off_by_one] == [True, False]
    assert off_by_one[1].evidence == {"docs_expected": 11, "docs_restored": 10}


def test_cross_store_finds_rows_without_index_and_orphan_indices():
    rows = [("o", "n", "o-n-a"), ("o", "n", "o-n-b"), ("x", "y", "x-y-a")]
    ok = chk.check_cross_store(rows, {"o-n-a", "o-n-b", "x-y-a"}, {"o/n"})
    assert all(c.passed for c in ok)
    missing, orphan = chk.check_cross_store(rows, {"o-n-a", "o-n-z", "x-y-a"}, {"o/n"})
    assert not missing.passed and missing.evidence["missing"] == ["o-n-b"]
    assert not orphan.passed and orphan.evidence["orphans"] == ["o-n-z"]


def test_canary_check_needs_a_contiguous_prefix_within_the_backup_window():
    assert chk.check_canary("t", "postgres", 5, 4, 4, 6).passed
    assert not chk.check_canary("t", "postgres", 3, 4, 3, 6).passed  # a gap: seq 0..4 but only 3 rows
    assert not chk.check_canary("t", "postgres", 7, 6, 4, 6).passed  # more than was written by the end
    assert not chk.check_canary("t", "postgres", 2, 1, 4, 6).passed  # acknowledged writes missing
    assert chk.check_canary("t", "postgres", 0, None, 0, 0).passed


def test_canary_log_windows_use_ack_for_lower_and_write_start_for_upper_bound():
    log = CanaryLog()
    for n in range(5):
        written = T0 + timedelta(seconds=n)
        log.acked.setdefault(("t", "es"), []).append((n, written, written + timedelta(milliseconds=600)))
    # A backup from 2.5s to 3.2s: writes acked before 2.5s (0, 1) must be in it; writes begun by
    # 3.2s (0..3) may be in it.
    assert log.acked_before("t", "es", T0 + timedelta(seconds=2.5)) == 2
    assert log.written_by("t", "es", T0 + timedelta(seconds=3.2)) == 4
    assert log.newest("t", "es") == T0 + timedelta(seconds=4)
    assert log.total("t", "missing") == 0


def _outcome(*, checks, rto, rpo_worst_at=None, problems=(), scenario="s", expected_failure=False,
             expectation_checked=False, harness_error=False) -> DrillOutcome:
    clock = FakeClock(T0)
    timeline = Timeline(clock)
    rpo = None
    if rpo_worst_at is not None:
        rpo = achieved_rpo(T0, {("o/n", "postgres"): rpo_worst_at}, canary_started_at=T0 - timedelta(hours=1))
    return DrillOutcome(
        scenario=scenario, objectives=Objectives(60, 3600), timeline=timeline, problems=list(problems),
        checks=checks,
        backup=None, metadata_restores=[], snapshot_restores=[], expected_docs={"o/n": {"o-n-a": 3}},
        rpo=rpo, rto_seconds=rto, exposure_seconds=None, tenants=[Tenant("o", "n")], kdf=KdfSpec(),
        versions={}, harness_error=harness_error, uncertain=False, expected_failure=expected_failure,
        expectation_checked=expectation_checked)


def _ran(name="s", *statuses: str) -> Scenario:
    steps = [Step(f"step {n}", status, line=n) for n, status in enumerate(statuses or ("passed",))]  # type: ignore[arg-type]
    return Scenario(name, "failed" if any(s in ("failed", "undefined") for s in statuses) else "passed", steps)


GOOD = [chk.Check("index o-n-a document count", True, "", "o/n", {"docs_expected": 3, "docs_restored": 3})]


def test_scenario_verdict_is_never_passed_without_checks_or_measurements():
    ran = _ran()
    assert scenario_verdict(_outcome(checks=GOOD, rto=10, rpo_worst_at=T0 - timedelta(seconds=5)), ran).passed
    assert scenario_verdict(_outcome(checks=[], rto=10, rpo_worst_at=T0), ran).status == "failed"
    assert scenario_verdict(_outcome(checks=GOOD, rto=None, rpo_worst_at=T0), ran).status == "failed"
    assert scenario_verdict(_outcome(checks=GOOD, rto=61, rpo_worst_at=T0), ran).status == "failed"
    bad = [chk.Check("index o-n-a document count", False, "", "o/n")]
    assert scenario_verdict(_outcome(checks=bad, rto=10, rpo_worst_at=T0), ran).status == "failed"
    # Everything measured fine, but a step failed (or was never recorded): not a pass.
    fine = _outcome(checks=GOOD, rto=10, rpo_worst_at=T0 - timedelta(seconds=5))
    assert scenario_verdict(fine, _ran("s", "passed", "failed")).status == "failed"
    assert scenario_verdict(fine, None).status == "failed"
    # Skipped steps are not failures, and not passes either: the judge sees no failed step.
    assert scenario_verdict(fine, _ran("s", "passed", "skipped")).passed


def test_expected_failure_passes_only_when_diagnosed_as_expected():
    from drdrill.core.report import Problem

    failed = [Problem("restore-metadata", "failed", "MinIO down", "MinIO health failed")]
    diagnosed = _outcome(checks=[], rto=None, problems=failed, expected_failure=True, expectation_checked=True)
    verdict = scenario_verdict(diagnosed, _ran("s", "passed", "skipped", "passed"))
    assert verdict.passed and verdict.reasons == ["expected failure, diagnosed"]
    # The diagnosis step failed: the failure was not the expected one.
    assert scenario_verdict(diagnosed, _ran("s", "passed", "failed")).status == "failed"
    # The recovery succeeded although it was expected to fail.
    recovered = _outcome(checks=GOOD, rto=10, expected_failure=True, expectation_checked=True)
    assert "did not" in scenario_verdict(recovered, _ran()).reasons[0]
    # Nobody checked where and why.
    unchecked = _outcome(checks=[], rto=None, problems=failed, expected_failure=True)
    assert scenario_verdict(unchecked, _ran()).status == "failed"
    broken = _outcome(checks=[], rto=None, problems=failed, expected_failure=True, expectation_checked=True,
                      harness_error=True)
    assert scenario_verdict(broken, _ran()).status == "error"


def test_report_takes_worst_rto_and_per_tenant_results():
    first = _outcome(checks=GOOD, rto=10, rpo_worst_at=T0 - timedelta(seconds=5), scenario="a")
    second = _outcome(checks=GOOD, rto=30, rpo_worst_at=T0 - timedelta(seconds=2), scenario="b")
    run = RunInfo("d1", "local", T0, T0 + timedelta(minutes=2), Objectives(60, 3600))
    report = build_report(run, [first, second], Timeline(FakeClock(T0)), [_ran("a"), _ran("b")])
    assert report.verdict == "passed"
    assert [s.verdict for s in report.scenarios] == ["passed", "passed"]
    assert report.achieved.rto_seconds == 30 and report.achieved.rpo_seconds == 5
    assert report.tenants[0].indices[0].docs_restored == 3
    assert build_report(run, [], Timeline(FakeClock(T0))).verdict == "error"
    interrupted = RunInfo("d2", "local", T0, T0, Objectives(60, 3600), incomplete=True)
    assert build_report(interrupted, [first], Timeline(FakeClock(T0)), [_ran("a")]).verdict == "error"
    # A scenario without its step record cannot be vouched for.
    assert build_report(run, [first], Timeline(FakeClock(T0))).verdict == "failed"


def test_a_healthy_fault_catalogue_passes_and_an_undiagnosed_fault_fails_the_run():
    from drdrill.core.report import Problem

    failed = [Problem("backup", "failed", "x", "MinIO health failed")]
    fault = _outcome(checks=[], rto=None, problems=failed, expected_failure=True, expectation_checked=True,
                     scenario="f")
    run = RunInfo("d1", "local", T0, T0, Objectives(60, 3600))
    ok = build_report(run, [fault], Timeline(FakeClock(T0)), [_ran("f", "passed", "skipped", "passed")])
    assert ok.verdict == "passed" and ok.scenarios[0].verdict_reasons == ["expected failure, diagnosed"]
    wrong = build_report(run, [fault], Timeline(FakeClock(T0)), [_ran("f", "passed", "skipped", "failed")])
    assert wrong.verdict == "failed"


def test_dump_completeness_needs_the_trailer_of_its_kind():
    from drdrill.core.completeness import DUMP_HEAD_BYTES, DUMP_TAIL_BYTES, dump_content_is_complete

    def complete(text: bytes, scope: str) -> bool | None:
        return dump_content_is_complete(text[:DUMP_HEAD_BYTES], text[-DUMP_TAIL_BYTES:], scope)

    full = (b"--\n-- PostgreSQL database dump\n--\n\n\\restrict k\nCREATE TABLE t (id int);\n--\n"
            b"-- PostgreSQL database dump complete\n--\n\n\\unrestrict k\n\n")
    assert complete(full, "all") is True
    assert complete(full, "org1") is True  # an organisation's dump made by pg_dump
    assert complete(full[:60], "all") is False
    org = b"-- drdrill per-organisation export\nBEGIN;\nDELETE FROM t;\nCOPY t (id) FROM stdin;\n1\n\\.\nCOMMIT;\n"
    assert complete(org, "org1") is True
    assert complete(org, "all") is False  # the whole database is always pg_dump's
    # COMMIT; inside data, then cut
    cut = b"-- drdrill per-organisation export\nBEGIN;\nCOPY t (id) FROM stdin;\nCOMMIT;\n2\n"
    assert complete(cut, "org1") is False
    # the platform's own per-org script, format unknown
    assert complete(b"INSERT INTO t VALUES (1);\n", "org1") is None


def test_held_back_passes_all_but_the_tail_until_released():
    from drdrill.core.completeness import DUMP_HEAD_BYTES, DUMP_TAIL_BYTES
    from drdrill.drill.dumps import HeldBack

    class Sink:
        def __init__(self) -> None:
            self.data = bytearray()

        def write(self, data: bytes) -> int:
            self.data += data
            return len(data)

    text = bytes(range(256)) * 100  # 25,600 bytes, written in uneven pieces
    sink = Sink()
    held = HeldBack(sink)
    for start in range(0, len(text), 3001):
        held.write(text[start:start + 3001])
    assert bytes(sink.data) == text[:-DUMP_TAIL_BYTES]
    assert held.tail == text[-DUMP_TAIL_BYTES:] and held.head == text[:DUMP_HEAD_BYTES]
    assert held.total == len(text)
    held.release()
    assert bytes(sink.data) == text and held.tail == b""

    short, sink = b"SELECT 1;\n", Sink()
    held = HeldBack(sink)
    held.write(short)
    assert sink.data == b"" and held.tail == short and held.head == short
    held.release()
    assert sink.data == short


def test_byte_rates_and_throttle_detection():
    from drdrill.core.forecast import byte_rate
    from drdrill.drill.reporting import throttled_restore
    from drdrill.drill.snapshot_restore import SnapshotRestore

    assert byte_rate("40mb") == 40 * 2**20 and byte_rate("1.5gb") == 1.5 * 2**30 and byte_rate("512b") == 512
    assert byte_rate("-1") is None and byte_rate(None) is None
    restore = SnapshotRestore("o/n", "r", "s", "u", ("o-n-a",), fetched_bytes=40 * 2**20, fetch_seconds=0.1,
                              restore_seconds=1.05, shards_total=1, shards_failed=0)
    outcome = _outcome(checks=[], rto=10)
    outcome.snapshot_restores.append(restore)
    outcome.recovery_throttle = "40mb"
    assert throttled_restore(outcome) is not None  # 38 MiB/s against a 40 MiB/s limit
    outcome.recovery_throttle = "400mb"
    assert throttled_restore(outcome) is None
    # Four tenants restored side by side in 1.05 s: the rate is over the wall time.
    outcome.snapshot_restores = [restore] * 4
    outcome.snapshot_restore_wall_s = 1.05
    outcome.recovery_throttle = "160mb"
    assert throttled_restore(outcome) is not None
    outcome.snapshot_restore_wall_s = 4.2  # one after another: a quarter of the throttle
    assert throttled_restore(outcome) is None


def test_a_snapshot_at_its_repository_throttle_is_a_weakness():
    from drdrill.backups.take import BackupSetResult, SnapshotBackup
    from drdrill.drill.reporting import _weaknesses, throttled_backup

    def snap(size: int, seconds: float, throttle: str | None) -> SnapshotBackup:
        return SnapshotBackup("o/n", "r", "s", "u", "SUCCESS", None, None, ("o-n-a",), 0, size, seconds, 0, 0, 0.0,
                              snapshot_throttle=throttle)

    outcome = _outcome(checks=[], rto=10)
    outcome.backup = BackupSetResult(T0, (snap(39 * 2**20, 1.0, "40mb"),), ())
    assert throttled_backup(outcome) is not None
    assert any("max_snapshot_bytes_per_sec=40mb" in w.summary for w in _weaknesses([outcome]))
    outcome.backup = BackupSetResult(T0, (snap(10 * 2**20, 1.0, "40mb"), snap(39 * 2**20, 1.0, None)), ())
    assert throttled_backup(outcome) is None
    assert not any("max_snapshot" in w.summary for w in _weaknesses([outcome]))


def test_a_restore_is_complete_only_when_every_copy_started():
    from drdrill.core.completeness import ALLOCATION_FAILED, restore_progress

    assert restore_progress([(True, "STARTED", None), (True, "STARTED", None)], 2) == "complete"
    # Not every primary there yet (the restore not yet in the cluster state), or one still recovering.
    assert restore_progress([(True, "STARTED", None)], 2) == "pending"
    assert restore_progress([], 1) == "pending"
    assert restore_progress([(True, "STARTED", None), (True, "INITIALIZING", None)], 2) == "pending"
    # Queued by Elasticsearch (node_initial_primaries_recoveries): waiting, not failed.
    assert restore_progress([(True, "UNASSIGNED", "NEW_INDEX_RESTORED")], 1) == "pending"
    # A replica still unassigned: not green, so not complete.
    assert restore_progress([(True, "STARTED", None), (False, "UNASSIGNED", "NEW_INDEX_RESTORED")], 1) == "pending"
    # A primary whose recovery failed: Elasticsearch does not retry a failed restore.
    assert restore_progress([(True, "STARTED", None), (True, "UNASSIGNED", ALLOCATION_FAILED)], 2) == "failed"


def test_isolation_is_tried_on_every_pair_while_few_then_on_neighbours():
    from drdrill.core.layout import Tenant
    from drdrill.drill.isolation import ALL_PAIRS_UP_TO, neighbours

    few = [Tenant(f"o{n}", "ns") for n in range(ALL_PAIRS_UP_TO)]
    assert all(len(neighbours(t, few)) == len(few) - 1 for t in few)
    many = [Tenant(f"o{n // 3:04d}", f"ns{n % 3}") for n in range(1000)]
    tried = {t: neighbours(t, many) for t in many}
    assert max(len(v) for v in tried.values()) <= 5 and all(t not in v for t, v in tried.items())
    # The same organisation's other namespaces first, and always one tenant of another organisation.
    first = Tenant("o0000", "ns0")
    assert {Tenant("o0000", "ns1"), Tenant("o0000", "ns2")} <= set(tried[first])
    assert all(any(o.org_id != t.org_id for o in v) for t, v in tried.items())
    # Every tenant's path is tried by somebody else's credentials too.
    assert set(many) == {o for v in tried.values() for o in v}


def test_a_store_that_takes_longer_to_read_than_elasticsearch_to_restore_is_the_bottleneck():
    from drdrill.drill.reporting import _weaknesses, store_bound_restore
    from drdrill.drill.snapshot_restore import SnapshotRestore

    def restore(fetch_s: float, restore_s: float) -> SnapshotRestore:
        return SnapshotRestore("o/n", "r", "s", "u", ("o-n-a",), fetched_bytes=2**20, fetch_seconds=fetch_s,
                               restore_seconds=restore_s, shards_total=1, shards_failed=0)

    outcome = _outcome(checks=[], rto=10)
    outcome.snapshot_restores = [restore(0.9, 0.5), restore(0.8, 0.5)]
    assert store_bound_restore(outcome) == pytest.approx((1.7, 1.0))
    assert any("object store was the bottleneck" in w.summary for w in _weaknesses([outcome]))
    outcome.snapshot_restores = [restore(0.9, 1.5)]  # Elasticsearch took longer
    assert store_bound_restore(outcome) is None
    outcome.snapshot_restores = [restore(0.4, 0.1)]  # too short to tell the store from set-up
    assert store_bound_restore(outcome) is None
    assert not any("bottleneck" in w.summary for w in _weaknesses([outcome]))


def test_a_relocation_after_every_copy_started_does_not_leave_a_restore_unfinished():
    from drdrill.core.completeness import unfinished_restore_recoveries

    assert unfinished_restore_recoveries([("i[0]", "DONE", "SNAPSHOT"), ("i[0]", "TRANSLOG", "PEER")]) == []
    assert unfinished_restore_recoveries([("i[0]", "INDEX", "SNAPSHOT"), ("i[1]", "done", "PEER")]) == ["i[0] INDEX"]
    assert unfinished_restore_recoveries([("i[0]", "TRANSLOG", "EXISTING_STORE")]) == ["i[0] TRANSLOG"]


def test_a_primary_lost_with_its_node_or_refused_everywhere_will_not_start():
    from drdrill.core.completeness import primary_cannot_start

    assert primary_cannot_start("no") and primary_cannot_start("no_valid_shard_copy")
    assert not any(primary_cannot_start(v) for v in ("yes", "throttled", "awaiting_info", "no_attempt"))



def test_a_primary_lost_with_its_node_is_restored_again_once_and_only_that():
    from drdrill.core.completeness import restore_again

    assert restore_again("no_valid_shard_copy", "NODE_LEFT", restored_again=False)
    assert not restore_again("no_valid_shard_copy", "NODE_LEFT", restored_again=True)  # lost twice: fails
    assert not restore_again("no_valid_shard_copy", "ALLOCATION_FAILED", restored_again=False)
    assert not restore_again("no", "NODE_LEFT", restored_again=False)  # refused everywhere: not a lost copy
    assert not restore_again("throttled", "NODE_LEFT", restored_again=False)


def test_cluster_features_need_three_nodes(tmp_path):
    from drdrill.drill.features import LoadedFeature, for_cluster
    from drdrill.errors import UsageError

    cluster = LoadedFeature(tmp_path / "nodes.feature", frozenset({"fault", "cluster"}))
    plain = LoadedFeature(tmp_path / "full.feature", frozenset())
    assert for_cluster([cluster, plain], 3) == [cluster, plain]
    assert for_cluster([cluster, plain], None) == [cluster, plain]  # live: its own cluster decides
    assert for_cluster([cluster, plain], 1) == [plain]  # left out of a directory
    with pytest.raises(UsageError, match="needs a cluster of 3 nodes, the stack has 1"):
        for_cluster([cluster], 1)


def test_a_wait_goes_on_through_a_master_election_until_its_deadline():
    import time

    from drdrill.drill.restore_losses import through_elections
    from drdrill.errors import NoElectedMaster, RestoreFailed

    def electing() -> int:
        raise NoElectedMaster("cluster health: 503 master_not_discovered_exception")

    assert through_elections(time.monotonic() + 60, "restore of org1/ns1", electing) is None
    assert through_elections(time.monotonic() + 60, "restore of org1/ns1", lambda: 7) == 7
    with pytest.raises(RestoreFailed, match="restore of org1/ns1: cluster health: 503"):
        through_elections(time.monotonic() - 1, "restore of org1/ns1", electing)
