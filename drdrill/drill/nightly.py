"""A week of nightly backups on the local target, with the backup job's clock injected: each
night's backup set carries its night in its names (as the platform's job names them), retention
is applied as the job applies it, and what is left is read back from the store.

Only what this drill wrote is ever planned for deletion: a store shared with earlier backups
(``--stack``) keeps them, whatever their age."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from drdrill.adapters.crypto import KdfSpec
from drdrill.adapters.platform import Platform
from drdrill.adapters.s3 import ObjectStore
from drdrill.backups import catalog
from drdrill.backups.prune import apply_retention, drdrill_snapshots
from drdrill.backups.take import BackupSetResult, backup_set
from drdrill.core import layout
from drdrill.core.layout import Tenant
from drdrill.core.retention import Coverage, PointKind, RecoveryPoint, plan_retention, retention_coverage
from drdrill.drill import checks as chk

log = logging.getLogger(__name__)

def past_nights(now: datetime, count: int) -> list[datetime]:
    """The same moment on each of the last ``count`` days, oldest first, the newest ``now``: a
    recovery then uses tonight's backup, newer by name than any earlier backup in the store."""
    return [now - timedelta(days=n) for n in range(count - 1, -1, -1)]


def run_nights(platform: Platform, tenants: list[Tenant], nights: list[datetime], password: bytes, *,
               kdf: KdfSpec, timeout_s: float, tenant_stores: dict[Tenant, ObjectStore],
               progress: Callable[[str], None] | None = None) -> list[BackupSetResult]:
    """One backup set per night, as the job would have taken it then."""
    results = []
    for number, night in enumerate(nights, 1):
        if progress is not None:
            progress(f"nightly backup {number}/{len(nights)}: the night of {night:%Y-%m-%d}")
        results.append(backup_set(platform, tenants, night, password, kdf=kdf, timeout_s=timeout_s,
                                  tenant_stores=tenant_stores))
    return results


def _points(platform: Platform, tenants: list[Tenant], written: set[str]) -> list[RecoveryPoint]:
    """Recovery points of this drill's tenants and scopes that this drill wrote."""
    tagged = {(t.key, name) for t in tenants for name in drdrill_snapshots(platform, t)}
    scopes = set(layout.metadata_scopes(tenants))
    return [p for p in catalog.recovery_points(platform.store, tenants, tagged_snapshots=tagged)
            if p.name_or_key in written and (p.kind == "snapshot" or p.scope in scopes)]


def written_by(results: list[BackupSetResult]) -> set[str]:
    return {s.snapshot for r in results for s in r.snapshots} | {m.key for r in results for m in r.metadata}


def apply_policy(platform: Platform, tenants: list[Tenant], results: list[BackupSetResult], now: datetime,
                 keep_days: int) -> list[str]:
    """Plan and apply retention over what these backups wrote; returns what was deleted."""
    plan = plan_retention(_points(platform, tenants, written_by(results)), now, keep_days)
    return apply_retention(platform, plan)


def coverage(platform: Platform, tenants: list[Tenant], results: list[BackupSetResult], now: datetime,
             keep_days: int) -> list[Coverage]:
    """What the store holds now of these backups, against the window."""
    scopes: list[tuple[PointKind, str]] = [("snapshot", t.key) for t in tenants]
    scopes += [("metadata", scope) for scope in sorted(layout.metadata_scopes(tenants))]
    return retention_coverage(_points(platform, tenants, written_by(results)), now, keep_days, scopes)


def coverage_checks(found: list[Coverage], keep_days: int) -> list[chk.Check]:
    out = []
    for scope in found:
        tenant = scope.scope if scope.kind == "snapshot" else None
        out.append(chk.Check(f"{scope.label} has a recovery point on each of the last {keep_days} days",
                             scope.missing_days == 0, f"{scope.missing_days} day(s) without one"
                             if scope.missing_days else "every day", tenant, {"retention": True}))
        out.append(chk.Check(f"{scope.label} keeps nothing older than {keep_days} days", not scope.older,
                             f"still there: {', '.join(scope.older[:3])}" if scope.older else "none", tenant,
                             {"retention": True}))
    return out
