"""The evidence store's layout, what it reads back (untrusted), the promises that age, the
store's write policy, the metrics a run pushes and the settings that ask for both (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from drdrill.core.evidence_store import (
    QUARTER,
    RESTORE_TEST_WINDOW,
    StoredRun,
    aged_promise,
    environment_segment,
    newest_first,
    parse_run_key,
    read_run,
    run_prefix,
)
from drdrill.core.objectives import Objectives
from drdrill.core.ownership import EvidenceBucketOnly, RefusedWrite, Write
from drdrill.core.report import Achieved, Evidence, Report, TenantResult
from drdrill.drill.publish import ALL_TENANTS, check_publishing, run_samples, success_samples
from drdrill.errors import ConfigError, UsageError
from drdrill.settings import DrillSettings, settings_from_dict

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
ID = "20261202T020000Z-1a2b3c"


def _report(verdict: str = "passed", *, restore_test: bool = False) -> Report:
    notes = {"restore_test": {"point": {"policy": "oldest", "night": "2026-11-26T02:00:00+00:00"}}} \
        if restore_test else {}
    return Report(drill_id=ID, target="live" if restore_test else "local", started_at=NOW - timedelta(minutes=5),
                  finished_at=NOW, objectives=Objectives(1800.0, 86400.0),
                  achieved=Achieved(rto_seconds=312.5, rpo_seconds=4000.0, backup_exposure_seconds=4000.0),
                  verdict=verdict,  # type: ignore[arg-type]
                  tenants=[TenantResult("org1", "ns1", rpo_seconds=3000.0), TenantResult("org2", "ns1",
                                                                                       rpo_seconds=4000.0)],
                  evidence=Evidence(notes=notes))


def test_run_keys_sort_by_time_and_parse_back():
    prefix = run_prefix("staging", NOW, ID)
    assert prefix == f"runs/staging/20261202T030000Z_{ID}/"
    key = parse_run_key(prefix + "report.json")
    assert key is not None and (key.environment, key.drill_id, key.prefix) == ("staging", ID, prefix)
    assert run_prefix("staging", NOW - timedelta(days=1), ID) < prefix


@pytest.mark.parametrize("key", [
    "runs/staging/20261202T030000Z_not-an-id/report.json", "runs/../20261202T030000Z_" + ID + "/report.json",
    "runs/a..b/20261202T030000Z_" + ID + "/report.json", "runs/staging/20261202T030000Z_" + ID + "/other.json",
    "elsewhere/staging/20261202T030000Z_" + ID + "/report.json", "runs/staging/x/y/report.json",
])
def test_foreign_keys_are_not_runs(key):
    assert parse_run_key(key) is None


def test_an_environment_name_becomes_one_safe_segment():
    assert environment_segment("staging") == "staging"
    assert environment_segment("../etc/x y") == "etc-x-y"
    assert environment_segment("..") == "unnamed"
    with pytest.raises(ValueError):
        run_prefix("staging", NOW, "../../x")


def test_a_report_read_back_gives_the_listed_figures():
    key = parse_run_key(run_prefix("staging", NOW, ID) + "report.json")
    assert key is not None
    run = read_run(key, _report(restore_test=True).to_json().encode(), has_pack=True)
    assert (run.verdict, run.rto_seconds, run.backup_exposure_seconds, run.finished_at) == \
        ("passed", 312.5, 4000.0, NOW)
    assert run.point == "oldest (2026-11-26T02:00:00+00:00)" and run.problem is None
    assert run.to_dict()["pack"] == key.prefix + "pack.tar.gz"


@pytest.mark.parametrize(("data", "cause"), [
    (b"\xff not json", "not JSON"), (b"[1, 2]", "not a JSON object"),
    (json.dumps({"drill_id": "20261202T020000Z-ffffff", "verdict": "passed"}).encode(), "another drill"),
    (json.dumps({"drill_id": ID, "verdict": "great"}).encode(), "no known verdict"),
    (json.dumps({"drill_id": ID, "verdict": "passed", "finished_at": "yesterday"}).encode(), "not a time"),
])
def test_a_malformed_report_is_listed_with_its_cause(data, cause):
    key = parse_run_key(run_prefix("staging", NOW, ID) + "report.json")
    assert key is not None
    run = read_run(key, data, has_pack=False)
    assert run.verdict == "malformed" and run.problem is not None and cause in run.problem


def test_untrusted_figures_are_dropped_not_believed():
    key = parse_run_key(run_prefix("staging", NOW, ID) + "report.json")
    assert key is not None
    data = {"drill_id": ID, "verdict": "passed", "achieved": {"rto_seconds": -5, "backup_exposure_seconds": "1"},
            "evidence": {"notes": {"point": {"policy": "newest\x1b[31m", "night": 7}}}}
    run = read_run(key, json.dumps(data).encode(), has_pack=True)
    assert run.rto_seconds is None and run.backup_exposure_seconds is None and run.point == "newest[31m"


def _run(days_ago: float, verdict: str, target: str = "live", drill: str = ID) -> StoredRun:
    return StoredRun(drill, "staging", "p/", NOW - timedelta(days=days_ago), verdict, target=target)


def test_newest_first():
    runs = [_run(3, "passed", drill="a"), _run(1, "failed", drill="b"), _run(2, "passed", drill="c")]
    assert [r.drill_id for r in newest_first(runs)] == ["b", "c", "a"]


def test_a_restore_test_promise_passes_only_within_its_window():
    promise = "restore tested within 8 days"
    passed = aged_promise(promise, [_run(1, "failed", drill="b"), _run(3, "passed", drill="a")], NOW,
                          RESTORE_TEST_WINDOW)
    assert passed.status == "passed" and "a passed 3.0 day(s) ago" in passed.evidence and "b, failed" in passed.evidence
    failed = aged_promise(promise, [_run(1, "failed"), _run(2, "error"), _run(20, "passed")], NOW, RESTORE_TEST_WINDOW)
    assert failed.status == "failed" and "2 run(s)" in failed.evidence
    stale = aged_promise(promise, [_run(9, "passed")], NOW, RESTORE_TEST_WINDOW)
    assert stale.status == "not evidenced" and "older than 8 days" in stale.evidence
    assert aged_promise(promise, [], NOW, RESTORE_TEST_WINDOW).status == "not evidenced"


def test_a_drill_promise_counts_only_the_kinds_asked_for_and_ignores_malformed_runs():
    runs = [_run(10, "passed", target="live"), _run(5, "malformed", target="local"), _run(100, "passed", "local")]
    drilled = aged_promise("drilled once a quarter", runs, NOW, QUARTER, kinds=("local", "containers"))
    assert drilled.status == "not evidenced"
    runs.append(_run(30, "passed", target="containers"))
    assert aged_promise("drilled once a quarter", runs, NOW, QUARTER, kinds=("local", "containers")).status == "passed"


def test_the_store_policy_allows_its_own_bucket_only_and_never_a_delete():
    from drdrill.adapters.s3 import s3_writes

    policy = EvidenceBucketOnly("drdrill-evidence", "staging")
    for write in s3_writes("PutObject", {"Bucket": "drdrill-evidence", "Key": "runs/x"}) + \
            s3_writes("CreateBucket", {"Bucket": "drdrill-evidence"}):
        policy.check(write)  # judged by the bucket the request names
    for write in s3_writes("PutObject", {"Bucket": "es-backups", "Key": "runs/x"}) + \
            s3_writes("DeleteObjects", {"Bucket": "drdrill-evidence", "Delete": {"Objects": [{"Key": "runs/x"}]}}):
        with pytest.raises(RefusedWrite):
            policy.check(write)
    policy.check(Write("s3", "object", "runs/x/report.json", "write", "PutObject", "drdrill-evidence"))
    policy.check(Write("s3", "request", "drdrill-evidence", "write", "CreateBucket", "drdrill-evidence"))
    for write in (Write("s3", "object", "runs/x/report.json", "write", "PutObject", "es-backups"),
                  Write("s3", "object", "runs/x/report.json", "delete", "DeleteObject", "drdrill-evidence"),
                  Write("s3", "request", "drdrill-evidence", "delete", "DeleteBucket", "drdrill-evidence"),
                  Write("s3", "request", "drdrill-evidence", "write", "PutBucketPolicy", "drdrill-evidence"),
                  Write("elasticsearch", "index", "x", "create")):
        with pytest.raises(RefusedWrite):
            policy.check(write)


def test_metrics_are_the_report_models_figures():
    report = _report(restore_test=True)
    samples = {(s.name, s.labels): s.value for s in run_samples(report)}
    assert samples == {
        ("drdrill_restore_test_passed", ()): 1.0, ("drdrill_restore_test_rto_seconds", ()): 312.5,
        ("drdrill_restore_test_rto_objective_seconds", ()): 1800.0, ("drdrill_rpo_objective_seconds", ()): 86400.0,
        ("drdrill_backup_exposure_seconds", (("tenant", "org1/ns1"),)): 3000.0,
        ("drdrill_backup_exposure_seconds", (("tenant", "org2/ns1"),)): 4000.0}
    assert [s.value for s in success_samples(report)] == [NOW.timestamp()]
    failed = _report("failed")
    failed.achieved.rto_seconds = None
    samples = {(s.name, s.labels): s.value for s in run_samples(failed)}
    assert samples[("drdrill_restore_test_passed", ())] == 0.0
    assert ("drdrill_restore_test_rto_seconds", ()) not in samples  # not measured: absent, never 0
    assert samples[("drdrill_backup_exposure_seconds", (("tenant", ALL_TENANTS),))] == 4000.0
    assert success_samples(failed) == []


def test_settings_name_the_gateway_and_a_store_apart_from_the_backups():
    settings = settings_from_dict({"restore_test": {"pushgateway_url": "http://pushgateway:9091"},
                                   "evidence": {"store_bucket": "drdrill-evidence"}}, DrillSettings())
    assert (settings.pushgateway_url, settings.evidence_store_bucket) == ("http://pushgateway:9091",
                                                                          "drdrill-evidence")
    for raw in ({"evidence": {"store_bucket": "es-backups"}}, {"evidence": {"store_bucket": "Not_A_Bucket"}},
                {"restore_test": {"pushgateway_url": "pushgateway:9091"}},
                {"restore_test": {"pushgateway_url": 9091}}):
        with pytest.raises(ConfigError):
            settings_from_dict(raw, DrillSettings())


def test_a_store_needs_a_key_and_a_store_that_outlives_the_run():
    settings = settings_from_dict({"evidence": {"store_bucket": "drdrill-evidence"}}, DrillSettings())
    with pytest.raises(UsageError, match="signing key"):
        check_publishing(settings, "local", "default", None)
    signer = object()
    with pytest.raises(UsageError, match="outlives the run"):
        check_publishing(settings, "local", None, signer)  # type: ignore[arg-type]
    check_publishing(settings, "local", "default", signer)  # type: ignore[arg-type]
    check_publishing(DrillSettings(), "local", None, None)


def test_the_promises_table_reads_the_store_and_stale_evidence_is_no_pass():
    from drdrill.drill.controls import controls

    def table(stored, this):
        found = controls([], [], Objectives(), target="live", previous_drill_at=NOW - timedelta(days=1),
                         finished_at=NOW, stored_runs=stored, this_run=this)
        return {c.key: c for c in found}

    now_failed = StoredRun("20261202T030000Z-000000", "", "", NOW, "failed", target="live")
    stale = table([_run(100, "passed"), _run(9, "passed")], now_failed)
    assert stale["cadence"].status == "passed"  # 9 days ago: within the quarter
    assert stale["restore-test"].status == "failed"  # this run, within 8 days, failed; the pass is older
    assert table([_run(100, "passed")], None)["cadence"].status == "not evidenced"
    fresh = table([_run(2, "passed")], now_failed)
    assert fresh["restore-test"].status == "passed" and "evidence store" in fresh["restore-test"].evidence
    assert fresh["restore-test"].standards  # mapped in standards.toml
    # Without a store the cadence is the local history's, and only this run can evidence a restore test.
    local = table(None, None)
    assert local["cadence"].status == "passed" and local["restore-test"].status == "not evidenced"
