"""Retention planning, replayed over simulated nights with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from drdrill.core.layout import checksum_key, metadata_key, snapshot_name
from drdrill.core.retention import RecoveryPoint, RetentionPlan, format_age, plan_retention
from drdrill.errors import EXIT_USAGE, ConfigError

FIRST_NIGHT = datetime(2026, 11, 10, 2, 0, tzinfo=UTC)
TENANTS = ("org1/ns1", "org1/ns2", "org2/ns1")
METADATA_SCOPES = ("all", "org1", "org2")
GROUPS = {("snapshot", t) for t in TENANTS} | {("metadata", s) for s in METADATA_SCOPES}


def night(n: int) -> datetime:
    return FIRST_NIGHT + timedelta(days=n)


def snap(tenant: str, at: datetime, *, complete: bool = True, ours: bool = True) -> RecoveryPoint:
    return RecoveryPoint("snapshot", tenant, snapshot_name(at), at, complete, ours)


def dump(scope: str, at: datetime, *, complete: bool = True, ours: bool = True) -> RecoveryPoint:
    return RecoveryPoint.metadata(metadata_key(scope, at), complete=complete, created_by_drdrill=ours)


def nightly_set(at: datetime) -> list[RecoveryPoint]:
    return [snap(t, at) for t in TENANTS] + [dump(s, at) for s in METADATA_SCOPES]


def platform_points(at: datetime) -> list[RecoveryPoint]:
    """What the platform's own nightly job leaves in the same bucket: never drdrill's to delete."""
    # The runbook's name, as drdrill's own dumps have, but a minute later (one key, one object)
    # and without a checksum record (the platform's job writes none).
    key = f"metadata/all/metadata_backup_all_{at + timedelta(minutes=1):%Y%m%d_%H%M%S}.sql.enc"
    return [
        RecoveryPoint("snapshot", "org1/ns1", f"nightly-{at:%Y.%m.%d}", at, True, False),
        RecoveryPoint.metadata(key, complete=True, created_by_drdrill=False, has_checksum=False),
    ]


def assert_partition(plan: RetentionPlan, points: list[RecoveryPoint]) -> None:
    kept = [p for p, _ in plan.keep]
    assert sorted(map(id, [*plan.delete, *kept])) == sorted(map(id, points))


def reason_of(plan: RetentionPlan, point: RecoveryPoint) -> str:
    return dict(plan.keep)[point]


# --- a fortnight of nightly backups ------------------------------------------------------


def test_a_fortnight_of_nightly_backups_keeps_exactly_the_last_seven_days() -> None:
    store: list[RecoveryPoint] = []
    foreign: list[RecoveryPoint] = []
    for n in range(14):
        store += nightly_set(night(n))
        foreign += platform_points(night(n))
        now = night(n) + timedelta(minutes=30)  # the nightly job has finished
        plan = plan_retention(store + foreign, now)
        assert_partition(plan, store + foreign)
        assert not set(plan.delete) & set(foreign)
        for point in plan.delete:
            assert now - point.taken_at > timedelta(days=7)
        store = [p for p in store if p not in set(plan.delete)]
        for group in GROUPS:
            nights = sorted(p.taken_at for p in store if p.group == group)
            assert nights == [night(k) for k in range(max(0, n - 6), n + 1)], (n, group)
    assert len(foreign) == 28  # all of the platform's backups survived the fortnight


def test_each_night_deletes_only_the_set_that_left_the_window() -> None:
    points = [p for n in range(8) for p in nightly_set(night(n))]
    plan = plan_retention(points, night(7) + timedelta(minutes=30))
    assert {p.taken_at for p in plan.delete} == {night(0)}
    assert len(plan.delete) == len(GROUPS)
    assert all(reason == "within 7 days" for _, reason in plan.keep)


def test_a_point_exactly_keep_days_old_is_kept_and_one_second_older_is_not() -> None:
    old, older = snap("org1/ns1", night(0)), snap("org1/ns1", night(0) - timedelta(seconds=1))
    newest = snap("org1/ns1", night(7))
    plan = plan_retention([old, older, newest], night(7))
    assert plan.delete == (older,)
    assert reason_of(plan, old) == "within 7 days"


def test_keep_days_is_honoured() -> None:
    points = [snap("org1/ns1", night(n)) for n in range(5)]
    plan = plan_retention(points, night(4) + timedelta(minutes=1), keep_days=2)
    assert [p.taken_at for p in plan.delete] == [night(0), night(1), night(2)]


# --- the newest complete backup survives ------------------------------------------------


def test_when_backups_stopped_ten_days_ago_the_newest_complete_set_remains() -> None:
    points = [p for n in range(5) for p in nightly_set(night(n))]
    now = night(4) + timedelta(days=10)
    plan = plan_retention(points, now)
    kept = [p for p, _ in plan.keep]
    assert len(kept) == len(GROUPS)
    assert {p.taken_at for p in kept} == {night(4)}
    assert {p.group for p in kept} == GROUPS
    assert reason_of(plan, snap("org1/ns2", night(4))) == "newest complete backup of org1/ns2"
    assert reason_of(plan, dump("all", night(4))) == "newest complete backup of all"
    assert len(plan.delete) == 4 * len(GROUPS)


def test_an_incomplete_newest_point_does_not_cost_the_newest_complete_one() -> None:
    complete_old = snap("org1/ns1", night(0))
    failed_old = snap("org1/ns1", night(1), complete=False)
    complete = snap("org1/ns1", night(2))
    partial = snap("org1/ns1", night(3), complete=False)
    plan = plan_retention([complete_old, failed_old, complete, partial], night(13))
    assert set(plan.delete) == {complete_old, failed_old}
    assert reason_of(plan, complete) == "newest complete backup of org1/ns1"
    assert reason_of(plan, partial) == "incomplete but newer than the newest complete backup of org1/ns1"


def test_incomplete_points_are_kept_while_no_complete_backup_exists() -> None:
    partial = snap("org1/ns1", night(0), complete=False)
    plan = plan_retention([partial], night(30))
    assert plan.delete == ()
    assert reason_of(plan, partial) == "incomplete, but org1/ns1 has no complete backup"


def test_protection_is_per_kind_and_scope() -> None:
    # org1's newest complete dump does not protect the old dumps of "all", nor org1's snapshots.
    points = [dump("all", night(0)), dump("all", night(1)), dump("org1", night(5))]
    points += [snap("org1/ns1", night(0)), snap("org1/ns1", night(1))]
    plan = plan_retention(points, night(20))
    assert {p.name_or_key for p in plan.delete} == {
        metadata_key("all", night(0)),
        snapshot_name(night(0)),
    }


def test_a_newer_complete_backup_by_the_platform_lets_old_drdrill_points_go() -> None:
    ours = dump("all", night(0))
    platform = platform_points(night(2))[1]
    plan = plan_retention([ours, platform], night(20))
    assert plan.delete == (ours,)
    assert reason_of(plan, platform) == "not created by drdrill (never deleted)"


def test_complete_points_tied_as_newest_are_both_kept() -> None:
    a = RecoveryPoint("snapshot", "org1/ns1", snapshot_name(night(0)), night(0), True, True)
    b = RecoveryPoint("snapshot", "org1/ns1", "drdrill-20261110t020001z", night(0), True, True)
    assert plan_retention([a, b], night(30)).delete == ()


# --- never touch what is not ours -------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "reason"),
    [
        (
            RecoveryPoint("snapshot", "org1/ns1", "nightly-2026.11.10", night(0), True, True),
            "name does not follow drdrill's naming (never deleted)",
        ),
        (
            RecoveryPoint("snapshot", "org1/ns1", snapshot_name(night(0)), night(0), True, False),
            "not created by drdrill (never deleted)",
        ),
        (  # the runbook's name without drdrill's checksum record: the platform job's, even if tagged
            RecoveryPoint.metadata(
                "metadata/all/metadata_backup_all_20261110_020000.sql.enc",
                complete=True,
                created_by_drdrill=True,
                has_checksum=False,
            ),
            "name does not follow drdrill's naming (never deleted)",
        ),
        (  # a key filed under another scope than the point claims
            RecoveryPoint("metadata", "org1", metadata_key("all", night(0)), night(0), True, True),
            "name does not follow drdrill's naming (never deleted)",
        ),
        (
            RecoveryPoint("metadata", "all", "metadata/all/export.sql.enc", night(0), True, True),
            "name does not follow drdrill's naming (never deleted)",
        ),
    ],
)
def test_foreign_points_are_never_planned_for_deletion(point: RecoveryPoint, reason: str) -> None:
    # A newer complete point of the same group exists, so nothing else would protect it.
    newer = snap(point.scope, night(3)) if point.kind == "snapshot" else dump(point.scope, night(3))
    plan = plan_retention([point, newer], night(60))
    assert point not in plan.delete
    assert reason_of(plan, point) == reason


# --- dumps and their checksum records -------------------------------------------------


def test_a_dump_and_its_checksum_record_are_deleted_together() -> None:
    old, new = dump("all", night(0)), dump("all", night(10))
    plan = plan_retention([old, new], night(14))
    key = metadata_key("all", night(0))
    assert [p.object_keys for p in plan.delete] == [(key, checksum_key(key))]


def test_snapshots_are_deleted_by_name_per_tenant_not_by_object_key() -> None:
    plan = plan_retention([snap("org2/ns1", night(0)), snap("org2/ns1", night(9))], night(14))
    assert [(p.kind, p.scope, p.name_or_key) for p in plan.delete] == [
        ("snapshot", "org2/ns1", "drdrill-20261110t020000z")]
    assert [p.object_keys for p in plan.delete] == [()]  # Elasticsearch deletes a snapshot's blobs


def test_a_point_cannot_carry_keys_that_are_not_its_own() -> None:
    key = metadata_key("all", night(0))
    with pytest.raises(ValueError, match="cannot own extra keys"):
        RecoveryPoint("metadata", "all", key, night(0), True, True, ("org1/ns1/index-0",))
    with pytest.raises(ValueError, match="cannot own extra keys"):
        RecoveryPoint("snapshot", "org1/ns1", "drdrill-x", night(0), True, True, (checksum_key(key),))


def test_metadata_point_from_a_key_without_checksum() -> None:
    point = RecoveryPoint.metadata(metadata_key("org2", night(1)), complete=False, created_by_drdrill=True,
                                   has_checksum=False)  # fmt: skip
    assert (point.scope, point.taken_at, point.extra_keys) == ("org2", night(1), ())
    with pytest.raises(ValueError, match="not a metadata dump key"):
        RecoveryPoint.metadata("metadata/all/x.sql.enc", complete=True, created_by_drdrill=True)


# --- dry-run listing --------------------------------------------------------------------


def test_describe_lists_deletions_with_age_then_what_is_kept_and_why() -> None:
    old, new, snapshot = dump("all", night(0)), dump("all", night(13)), snap("org1/ns1", night(2))
    plan = plan_retention([new, snapshot, old], night(14) + timedelta(hours=5, minutes=30))
    key = "metadata/all/metadata_backup_all_20261110_020000.sql.enc"
    assert plan.describe() == [
        f"would delete {key} (14d 05h old) with {key}.sha256",
        "keep metadata/all/metadata_backup_all_20261123_020000.sql.enc (29h 30m old): within 7 days",
        "keep snapshot drdrill-20261112t020000z of org1/ns1 (12d 05h old): newest complete backup of org1/ns1",
    ]


def test_points_from_the_future_are_kept_and_said_to_be() -> None:
    future = snap("org1/ns1", night(2))
    plan = plan_retention([future], night(1))
    assert plan.describe() == [
        "keep snapshot drdrill-20261112t020000z of org1/ns1 (in the future): within 7 days"
    ]


def test_ages_print_as_every_duration_does() -> None:
    assert format_age(timedelta(days=3, hours=5, minutes=59)) == "3d 05h"
    assert format_age(timedelta(hours=25, minutes=3)) == "25h 03m"
    assert format_age(timedelta(0)) == "0.00s"
    assert format_age(timedelta(seconds=-1)) == "in the future"


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("keep_days", [0, -1, True, 1.5, "7"])
def test_keep_days_below_one_or_not_whole_is_a_config_error(keep_days: object) -> None:
    with pytest.raises(ConfigError) as info:
        plan_retention([], night(0), keep_days=keep_days)  # type: ignore[arg-type]
    assert info.value.key == "keep_days"
    assert repr(keep_days) in info.value.message
    assert info.value.exit_status == EXIT_USAGE


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 10, 2, 0)  # naive on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        plan_retention([], naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        RecoveryPoint("snapshot", "org1/ns1", snapshot_name(night(0)), naive, True, True)


def test_a_point_listed_twice_is_refused_rather_than_guessed() -> None:
    point = snap("org1/ns1", night(0))
    twin = snap("org1/ns1", night(0), complete=False)
    with pytest.raises(ValueError, match="listed twice"):
        plan_retention([point, twin], night(20))


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown recovery point kind"):
        RecoveryPoint("index", "org1/ns1", "x", night(0), True, True)  # type: ignore[arg-type]


def test_coverage_counts_the_days_without_a_point_and_what_is_older_than_the_window():
    from drdrill.core.retention import RecoveryPoint, retention_coverage

    now = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

    def snap(days_ago: int, complete: bool = True) -> RecoveryPoint:
        at = (now - timedelta(days=days_ago)).replace(hour=2)
        return RecoveryPoint("snapshot", "o/n", f"nightly-{days_ago}", at, complete, True)

    week = [snap(d) for d in range(7)]
    [full] = retention_coverage(week, now)
    assert (full.missing_days, full.older) == (0, ())
    [gappy] = retention_coverage([snap(d) for d in (0, 1, 4)] + [snap(2, complete=False)], now)
    assert gappy.missing_days == 4  # days 2 (incomplete), 3, 5 and 6
    [stale] = retention_coverage([*week, snap(9), snap(12)], now)
    assert stale.older == ("nightly-12", "nightly-9")
    # Only old points: the newest complete one is kept on purpose, the rest are not.
    [kept] = retention_coverage([snap(10), snap(11)], now)
    assert kept.missing_days == 7 and kept.older == ("nightly-11",)
    # A scope that must be covered and has no point at all.
    [nothing] = retention_coverage([], now, scopes=[("metadata", "all")])
    assert nothing.label == "metadata/all" and nothing.missing_days == 7
