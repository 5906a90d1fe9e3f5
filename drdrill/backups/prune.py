"""Carry out a retention plan (the plan itself is pure: :mod:`drdrill.core.retention`)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from drdrill.adapters.platform import Platform
from drdrill.backups import catalog, repo_sync
from drdrill.backups.take import backup_repository_location, register_backup_repository
from drdrill.core.layout import Tenant
from drdrill.core.retention import RetentionPlan, plan_retention

log = logging.getLogger(__name__)


def drdrill_snapshots(platform: Platform, tenant: Tenant) -> set[str]:
    """Names of the tenant's snapshots that carry drdrill's tag (Elasticsearch reads it)."""
    repository = register_backup_repository(platform, tenant)
    return {s.name for s in platform.cluster.snapshots(repository)
            if s.metadata.get(catalog.CREATED_BY_KEY) == catalog.CREATED_BY_VALUE}


def plan_prune(platform: Platform, now: datetime, keep_days: int) -> RetentionPlan:
    """The retention plan for the whole store, with "created by drdrill" read from the tags."""
    tenants = catalog.discover_tenants(platform.store)
    tagged = {(t.key, name) for t in tenants for name in drdrill_snapshots(platform, t)}
    return plan_retention(catalog.recovery_points(platform.store, tenants, tagged_snapshots=tagged), now, keep_days)


def apply_retention(platform: Platform, plan: RetentionPlan) -> list[str]:
    """Delete exactly what the plan lists; returns what was deleted. Snapshots are deleted by
    Elasticsearch (it knows which blobs are still shared with kept snapshots)."""
    deleted: list[str] = []
    by_tenant: dict[str, list[str]] = defaultdict(list)
    for point in plan.delete:
        if point.kind == "metadata":
            # The dump before its checksum record: interrupted half-way, what is left is a
            # record without a dump, which nothing will mistake for a recovery point.
            platform.store.delete([point.name_or_key])
            platform.store.delete([k for k in point.object_keys if k != point.name_or_key])
            deleted.append(point.label())
        else:
            by_tenant[point.scope].append(point.name_or_key)
    for key, names in sorted(by_tenant.items()):
        tenant = Tenant.parse(key)
        repository = register_backup_repository(platform, tenant)
        location = backup_repository_location(platform, tenant) if platform.mirrors_repositories else None
        before = repo_sync.local_blobs(location) if location else set()
        for name in names:
            platform.cluster.delete_snapshot(repository, name)
            deleted.append(f"snapshot {name} of {key}")
        if location is not None:
            # New root generation first, then the blobs it no longer references.
            repo_sync.publish(platform.store, location, tenant.repo_prefix)
            gone = repo_sync.remove_deleted(platform.store, location, tenant.repo_prefix, before)
            log.info("%s: removed %d blobs no longer referenced", key, len(gone))
    return deleted
