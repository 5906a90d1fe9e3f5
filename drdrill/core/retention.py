"""Retention planning for recovery points: which of drdrill's own backups may go.

Curator-style: plan, show the plan (dry run), then execute. This module only plans, from a list
of recovery points and an injected ``now``; it never reads the clock or the store, so a whole
fortnight of nightly backups can be replayed in a unit test.

The rules, in the order a point is judged (the first that applies keeps it):

1. never delete what drdrill did not create (DESIGN.md, safety rules): the caller's
   ``created_by_drdrill`` flag *and* drdrill's own naming must both say so;
2. keep everything taken within ``keep_days`` (deleted only when strictly older);
3. keep the newest complete point of each (kind, scope), however old: if the nightly job has
   been failing for ten days, the last good backup is the only way back;
4. keep incomplete points newer than that newest complete one: a PARTIAL snapshot may hold the
   only copy of recent data for some indices. Older incomplete points are deleted.

A metadata dump and its checksum record form one point (``extra_keys``) and go together: a dump
without its checksum cannot be verified, a checksum without its dump is litter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from drdrill.core.durations import format_duration
from drdrill.core.layout import checksum_key, parse_metadata_key, parse_snapshot_name
from drdrill.errors import ConfigError

PointKind = Literal["snapshot", "metadata"]
DEFAULT_KEEP_DAYS = 7


def _utc(at: datetime, what: str) -> datetime:
    # Mixing naive and aware datetimes either raises deep inside a comparison or, worse, shifts
    # the window by the machine's UTC offset; refuse at the boundary instead.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(UTC)


@dataclass(frozen=True)
class RecoveryPoint:
    """One backup: a snapshot in a tenant's repository, or a metadata dump (+ its checksum).

    ``scope`` is the tenant key ``"org/ns"`` for snapshots, ``"all"`` or an org_id for dumps.
    ``name_or_key`` is the snapshot name, or the dump's object key.
    """

    kind: PointKind
    scope: str
    name_or_key: str
    taken_at: datetime
    complete: bool
    created_by_drdrill: bool
    extra_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("snapshot", "metadata"):
            raise ValueError(f"unknown recovery point kind {self.kind!r}")
        object.__setattr__(self, "taken_at", _utc(self.taken_at, "taken_at"))
        object.__setattr__(self, "extra_keys", tuple(self.extra_keys))
        # extra_keys are deleted along with the point, so they are limited to what belongs to it:
        # a snapshot's blobs are Elasticsearch's to delete, a dump has only its checksum record.
        allowed = {checksum_key(self.name_or_key)} if self.kind == "metadata" else set()
        stray = [key for key in self.extra_keys if key not in allowed]
        if stray:
            raise ValueError(f"{self.kind} {self.name_or_key!r} cannot own extra keys {stray!r}")

    @classmethod
    def metadata(
        cls, key: str, *, complete: bool, created_by_drdrill: bool, has_checksum: bool = True
    ) -> RecoveryPoint:
        """A dump point from its object key (scope and time from the name)."""
        dump = parse_metadata_key(key)
        if dump is None:
            raise ValueError(f"not a metadata dump key: {key!r}")
        extra = (checksum_key(key),) if has_checksum else ()
        return cls("metadata", dump.scope, key, dump.taken_at, complete, created_by_drdrill, extra)

    @property
    def group(self) -> tuple[str, str]:
        return (self.kind, self.scope)

    @property
    def object_keys(self) -> tuple[str, ...]:
        """Bucket keys to delete for this point (none for a snapshot: ES deletes its blobs)."""
        return (self.name_or_key, *self.extra_keys) if self.kind == "metadata" else ()

    def label(self) -> str:
        if self.kind == "snapshot":
            # The same snapshot name exists in every tenant's repository; say which one.
            return f"snapshot {self.name_or_key} of {self.scope}"
        return self.name_or_key

    def follows_drdrill_naming(self) -> bool:
        if self.kind == "snapshot":
            return parse_snapshot_name(self.name_or_key) is not None
        dump = parse_metadata_key(self.name_or_key)
        # drdrill's dumps: its earlier ISO name, or the runbook's name with drdrill's checksum
        # record beside it (the platform's own job writes none).
        return dump is not None and dump.scope == self.scope and (dump.iso_naming or bool(self.extra_keys))


def format_age(age: timedelta) -> str:
    """An age as every duration drdrill prints (``12m 03s``, ``77h 00m``: one way everywhere);
    future times (clock skew) say so instead of a negative age."""
    if age < timedelta(0):
        return "in the future"
    return format_duration(age.total_seconds())


@dataclass(frozen=True)
class RetentionPlan:
    now: datetime
    keep_days: int
    delete: tuple[RecoveryPoint, ...]
    keep: tuple[tuple[RecoveryPoint, str], ...]

    def describe(self) -> list[str]:
        """The dry-run listing: one line per point, deletions first."""
        lines = []
        for point in self.delete:
            line = f"would delete {point.label()} ({self._age(point)})"
            if point.extra_keys:
                line += f" with {', '.join(point.extra_keys)}"
            lines.append(line)
        for point, reason in self.keep:
            lines.append(f"keep {point.label()} ({self._age(point)}): {reason}")
        return lines

    def _age(self, point: RecoveryPoint) -> str:
        age = self.now - point.taken_at
        return format_age(age) + (" old" if age >= timedelta(0) else "")


def _check_keep_days(keep_days: object) -> int:
    # bool is an int subclass; keep_days=True is certainly a mistake, not "1 day".
    if isinstance(keep_days, bool) or not isinstance(keep_days, int) or keep_days < 1:
        raise ConfigError(
            "keep_days",
            f"{keep_days!r} is not valid; expected a whole number of days >= 1",
            hint="the platform keeps 7 days of backups",
        )
    return keep_days


def plan_retention(
    points: Iterable[RecoveryPoint], now: datetime, keep_days: int = DEFAULT_KEEP_DAYS
) -> RetentionPlan:
    """Split ``points`` into what may be deleted and what is kept (with the reason)."""
    keep_days = _check_keep_days(keep_days)
    now = _utc(now, "now")
    cutoff = now - timedelta(days=keep_days)
    ordered = sorted(points, key=lambda p: (p.kind, p.scope, p.taken_at, p.name_or_key))

    seen: set[tuple[str, str, str]] = set()
    newest_complete: dict[tuple[str, str], datetime] = {}
    for point in ordered:
        identity = (point.kind, point.scope, point.name_or_key)
        if identity in seen:
            # Two records for one backup with possibly different flags: a caller bug, and
            # guessing which is right could delete the wrong thing.
            raise ValueError(f"recovery point listed twice: {point.label()}")
        seen.add(identity)
        # Every complete point counts, the platform's too: any complete backup is a way back.
        if point.complete and point.taken_at >= newest_complete.get(point.group, point.taken_at):
            newest_complete[point.group] = point.taken_at

    delete: list[RecoveryPoint] = []
    keep: list[tuple[RecoveryPoint, str]] = []
    for point in ordered:
        reason = _keep_reason(point, cutoff, keep_days, newest_complete.get(point.group))
        if reason is None:
            delete.append(point)
        else:
            keep.append((point, reason))
    return RetentionPlan(now, keep_days, tuple(delete), tuple(keep))


def _keep_reason(
    point: RecoveryPoint, cutoff: datetime, keep_days: int, newest_complete: datetime | None
) -> str | None:
    """Why ``point`` is kept, or None if it may be deleted."""
    if not point.created_by_drdrill:
        return "not created by drdrill (never deleted)"
    if not point.follows_drdrill_naming():
        return "name does not follow drdrill's naming (never deleted)"
    if point.taken_at >= cutoff:
        return f"within {keep_days} days"
    if point.complete and point.taken_at == newest_complete:
        return f"newest complete backup of {point.scope}"
    if not point.complete and (newest_complete is None or point.taken_at > newest_complete):
        if newest_complete is None:
            return f"incomplete, but {point.scope} has no complete backup"
        return f"incomplete but newer than the newest complete backup of {point.scope}"
    return None


@dataclass(frozen=True)
class Coverage:
    """What a scope's recovery points cover of the retention window (UTC days)."""

    kind: PointKind
    scope: str
    missing_days: int  # of the last keep_days days, those without a complete point
    older: tuple[str, ...]  # points older than the window that the policy did not need to keep

    @property
    def label(self) -> str:
        return f"tenant {self.scope}" if self.kind == "snapshot" else f"metadata/{self.scope}"


def retention_coverage(points: Iterable[RecoveryPoint], now: datetime, keep_days: int = DEFAULT_KEEP_DAYS,
                       scopes: Iterable[tuple[PointKind, str]] = ()) -> list[Coverage]:
    """Per (kind, scope): days of the window without a complete point, and points past the window
    that rule 3 of :func:`plan_retention` (the newest complete one) does not explain. ``scopes``
    names those that must be covered even if they have no point at all."""
    keep_days = _check_keep_days(keep_days)
    now = _utc(now, "now")
    days = {(now - timedelta(days=n)).date() for n in range(keep_days)}
    cutoff = now - timedelta(days=keep_days)
    by_scope: dict[tuple[PointKind, str], list[RecoveryPoint]] = {key: [] for key in scopes}
    for point in points:
        by_scope.setdefault((point.kind, point.scope), []).append(point)
    out = []
    for (kind, scope), found in sorted(by_scope.items()):
        complete = [p for p in found if p.complete]
        newest = max((p.taken_at for p in complete), default=None)
        covered = {p.taken_at.date() for p in complete}
        older = tuple(sorted(p.name_or_key for p in found if p.taken_at < cutoff and p.taken_at != newest))
        out.append(Coverage(kind, scope, len(days - covered), older))
    return out
