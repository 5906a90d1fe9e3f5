from datetime import UTC, datetime, timedelta, timezone

import pytest

from drdrill.core.clock import FakeClock, from_iso, to_iso, utc_ms
from drdrill.core.timeline import Timeline
from drdrill.errors import HarnessError, VerificationFailed

START = datetime(2025, 3, 1, 2, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def clock():
    return FakeClock(START)


def test_fake_clock_moves_only_when_advanced(clock):
    wall, mono = clock.wall(), clock.monotonic()
    clock.advance(2.5)
    assert clock.wall() - wall == timedelta(seconds=2.5)
    assert clock.monotonic() - mono == 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fake_clock_refuses_naive_start():
    with pytest.raises(ValueError):
        FakeClock(datetime(2025, 1, 1))  # naive on purpose


def test_iso_round_trip_is_utc_with_milliseconds_and_z():
    paris = timezone(timedelta(hours=1))
    dt = datetime(2025, 3, 1, 3, 0, 0, 123999, tzinfo=paris)
    assert to_iso(dt) == "2025-03-01T02:00:00.123Z"
    assert from_iso(to_iso(dt)) == utc_ms(dt)
    assert from_iso("2025-03-01T02:00:00.123+00:00") == utc_ms(dt)


def test_passing_phase_is_timed_on_the_monotonic_clock(clock):
    tl = Timeline(clock)
    clock.advance(1)
    with tl.phase("restore-metadata") as ph:
        clock.advance(12.25)
        ph.detail = "3 organisations"
    [rec] = tl.phases
    assert rec.status == "passed"
    assert rec.start_offset == 1.0
    assert rec.end_offset == 13.25
    assert rec.duration_seconds == 12.25
    assert rec.started_at == utc_ms(START + timedelta(seconds=1))
    assert rec.finished_at == utc_ms(START + timedelta(seconds=13.25))
    assert rec.started_at.microsecond % 1000 == 0
    assert rec.detail == "3 organisations"


def test_phase_is_recorded_as_incomplete_while_running(clock):
    tl = Timeline(clock)
    with tl.phase("backup"):
        assert tl.phases[0].status == "incomplete"
        assert tl.phases[0].finished_at is None


def test_recovery_failure_marks_phase_failed_with_duration_and_reraises(clock):
    tl = Timeline(clock)
    with pytest.raises(VerificationFailed), tl.phase("verify"):
        clock.advance(4)
        raise VerificationFailed("tenant org1/ns1: 99 of 100 documents")
    [rec] = tl.phases
    assert rec.status == "failed"
    assert rec.duration_seconds == 4.0
    assert rec.finished_at is not None
    assert "99 of 100" in rec.error


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (HarnessError("minio did not start"), "error"),
        (RuntimeError("boom"), "error"),
        (KeyboardInterrupt(), "incomplete"),
    ],
)
def test_other_exceptions_mark_phase_error_or_incomplete(clock, exc, status):
    tl = Timeline(clock)
    with pytest.raises(type(exc)), tl.phase("restore-snapshots"):
        clock.advance(2)
        raise exc
    assert tl.phases[0].status == status
    assert tl.phases[0].duration_seconds == 2.0
    assert tl.phases[0].error


def test_skipped_phase(clock):
    tl = Timeline(clock)
    with tl.phase("switch-traffic") as ph:
        ph.skip("no traffic switch configured")
    assert [p.status for p in tl.phases] == ["skipped"]
    assert tl.phases[0].detail == "no traffic switch configured"


def test_events_and_recovery_window(clock):
    tl = Timeline(clock)
    assert tl.recovery_window() is None
    tl.event("canary_write", tenant="org1/ns1", at=START)
    clock.advance(10)
    disaster = tl.mark_disaster(kind="delete-all-indices")
    clock.advance(0.5)
    assert tl.recovery_window() == (disaster, None)
    clock.advance(100)
    recovered = tl.mark_recovered()
    assert tl.recovery_window() == (disaster, recovered)
    assert recovered.offset - disaster.offset == pytest.approx(100.5)
    assert tl.events[0].data == {"tenant": "org1/ns1", "at": to_iso(START)}


def test_recovered_before_latest_disaster_does_not_count(clock):
    tl = Timeline(clock)
    tl.mark_disaster()
    tl.mark_recovered()
    clock.advance(5)
    second = tl.mark_disaster()
    assert tl.recovery_window() == (second, None)


def test_dict_round_trip(clock):
    tl = Timeline(clock)
    with tl.phase("prepare"):
        clock.advance(1.234)
    with pytest.raises(RuntimeError), tl.phase("backup"):
        raise RuntimeError("x")
    tl.mark_disaster(scenario="full")
    data = tl.to_dict()
    assert data["origin"] == to_iso(START)
    assert data["phases"][0]["started_at"].endswith("Z")
    again = Timeline.from_dict(data, clock)
    assert again.to_dict() == data
    assert again.phases == tl.phases
    assert again.events == tl.events
