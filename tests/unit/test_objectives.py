from datetime import UTC, datetime, timedelta

import pytest

from drdrill.core.objectives import (
    Objectives,
    achieved_rpo,
    achieved_rto,
    backup_exposure,
    judge,
)
from drdrill.errors import EXIT_FAILED, EXIT_HARNESS, EXIT_PASSED, ConfigError

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
OBJ = Objectives()


def test_default_objectives_come_from_the_runbook():
    assert OBJ.rto_seconds == 30 * 60
    assert OBJ.rpo_seconds == 24 * 3600
    with pytest.raises(ConfigError, match="objectives"):
        Objectives(rto_seconds=0)


def test_achieved_rto_from_datetimes_and_offsets():
    assert achieved_rto(T0, T0 + timedelta(minutes=12, seconds=3)) == 723.0
    assert achieved_rto(10.5, 733.5) == 723.0
    with pytest.raises(ValueError):
        achieved_rto(T0, T0 - timedelta(seconds=1))
    with pytest.raises(TypeError):
        achieved_rto(T0, 10.0)


def test_rpo_is_worst_of_stores_per_tenant_and_worst_overall():
    writes = {
        ("org1/ns1", "elasticsearch"): T0 - timedelta(seconds=5),
        ("org1/ns1", "postgresql"): T0 - timedelta(hours=2),
        ("org2/ns1", "elasticsearch"): T0 - timedelta(seconds=30),
        ("org2/ns1", "postgresql"): T0 - timedelta(seconds=1),
    }
    res = achieved_rpo(T0, writes, canary_started_at=T0 - timedelta(days=1))
    assert res.by_tenant == {"org1/ns1": 7200.0, "org2/ns1": 30.0}
    assert res.by_store[("org1/ns1", "elasticsearch")] == 5.0
    assert res.worst == 7200.0
    assert res.nothing_survived == []


def test_no_surviving_write_counts_everything_since_canary_start_never_zero():
    started = T0 - timedelta(hours=3)
    writes = {("org1/ns1", "elasticsearch"): T0 - timedelta(seconds=2), ("org1/ns1", "postgresql"): None}
    res = achieved_rpo(T0, writes, canary_started_at=started)
    assert res.by_store[("org1/ns1", "postgresql")] == 3 * 3600.0
    assert res.by_tenant["org1/ns1"] == 3 * 3600.0
    assert res.worst == 3 * 3600.0
    assert res.nothing_survived == [("org1/ns1", "postgresql")]


def test_write_after_disaster_is_zero_loss_not_negative():
    res = achieved_rpo(T0, {("t", "elasticsearch"): T0 + timedelta(milliseconds=4)}, canary_started_at=T0)
    assert res.worst == 0.0


def test_nothing_measured_gives_no_rpo():
    assert achieved_rpo(T0, {}, canary_started_at=T0).worst is None


def test_backup_exposure():
    assert backup_exposure(T0, T0 - timedelta(hours=10)) == 36000.0
    with pytest.raises(ValueError):
        backup_exposure(T0, T0 + timedelta(seconds=1))


def test_judge_passes_within_and_exactly_at_target():
    v = judge(OBJ, rto=1800.0, rpo=86400.0, verifications_passed=True)
    assert v.status == "passed"
    assert v.passed and v.exit_status == EXIT_PASSED
    assert v.reasons == ["RTO 30m 00s within target 30m 00s", "RPO 24h 00m within target 24h 00m"]


def test_judge_fails_over_target_with_reason():
    v = judge(OBJ, rto=1862.0, rpo=60.0, verifications_passed=True)
    assert v.status == "failed"
    assert v.exit_status == EXIT_FAILED
    assert v.reasons == ["RTO 31m 02s exceeds target 30m 00s"]


def test_judge_reason_is_unambiguous_just_over_target():
    v = judge(OBJ, rto=1800.4, rpo=60.0, verifications_passed=True)
    assert v.status == "failed"
    assert v.reasons == ["RTO 30m 00s (1800.400s) exceeds target 30m 00s"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rto": None, "rpo": 60.0, "verifications_passed": True},
        {"rto": 60.0, "rpo": None, "verifications_passed": True},
        {"rto": 60.0, "rpo": 60.0, "verifications_passed": False},
        {"rto": 60.0, "rpo": 60.0, "verifications_passed": True, "uncertain": True},
        {"rto": 60.0, "rpo": 90000.0, "verifications_passed": True},
    ],
)
def test_judge_never_passes_unmeasured_uncertain_failed_or_over(kwargs):
    v = judge(OBJ, **kwargs)
    assert v.status == "failed"
    assert v.reasons
    assert not any("within" in r for r in v.reasons)


def test_harness_error_wins_over_everything():
    v = judge(OBJ, rto=60.0, rpo=60.0, verifications_passed=True, harness_error=True)
    assert v.status == "error"
    assert v.exit_status == EXIT_HARNESS
    assert "harness" in v.reasons[0]


def test_an_objective_check_is_the_verdicts_own_rule():
    from drdrill.core.objectives import ObjectiveCheck

    assert ObjectiveCheck("RTO", 1800.0, 1800.0).met
    assert not ObjectiveCheck("RTO", 1800.001, 1800.0).met
    unmeasured = ObjectiveCheck("RPO", None, 60.0)
    assert not unmeasured.met and "not measured" in unmeasured.reason
    # The step and the verdict say the same thing about the same figure.
    verdict = judge(OBJ, rto=1862.0, rpo=60.0, verifications_passed=True)
    assert ObjectiveCheck("RTO", 1862.0, OBJ.rto_seconds).reason in verdict.reasons


def test_the_run_verdict_is_the_worst_and_never_passes_empty():
    from drdrill.core.objectives import Verdict, judge_run

    ok, bad, broken = Verdict("passed", ["fine"]), Verdict("failed", ["RTO over"]), Verdict("error", ["crash"])
    assert judge_run([("a", ok), ("b", ok)]).status == "passed"
    run = judge_run([("a", ok), ("b", bad)])
    assert run.status == "failed" and run.reasons == ["b: RTO over"] and run.exit_status == EXIT_FAILED
    assert judge_run([("a", bad), ("b", broken)]).exit_status == EXIT_HARNESS
    assert judge_run([]).status == "error"
    assert judge_run([("a", ok)], incomplete=True).status == "error"
    assert judge_run([("a", ok)], errors=["could not stop the target"]).status == "error"
    assert judge_run([("a", ok)], failures=["a step failed outside a phase"]).status == "failed"
