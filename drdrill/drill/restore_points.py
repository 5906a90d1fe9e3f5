"""What a restore test works with: the target's sandbox (:class:`Sandbox`), the recovery points
it chose per tenant and per dump scope, and how the report describes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from drdrill.backups import catalog
from drdrill.core.backup_job import BackupJobHealth
from drdrill.core.layout import Tenant

if TYPE_CHECKING:
    from drdrill.adapters.platform import Platform
    from drdrill.adapters.postgres import MetadataDb
    from drdrill.adapters.s3 import ObjectStore
    from drdrill.core.ownership import Mark
    from drdrill.settings.live import LiveTargetSettings


@runtime_checkable
class Sandbox(Protocol):
    """What a target offers a restore test: names of its own, a scratch database, and a
    record of everything created so it can all be removed (:class:`~drdrill.targets.live.LiveTarget`)."""

    prefix: str
    # The platform's backup job as its scheduler records it (None: the target cannot read one).
    backup_job: BackupJobHealth | None
    # drdrill's ownership mark on what this run creates.
    mark: Mark
    settings: LiveTargetSettings

    @property
    def dump_password(self) -> bytes: ...

    def track_created(self, *, indices: list[str] = ..., repositories: list[str] = ...,
                      directories: list[Path] = ...) -> None: ...

    def scratch_db(self, platform: Platform, name: str) -> MetadataDb: ...

    def describe(self) -> dict[str, Any]: ...

    def tenant_stores(self, tenants: list[Tenant]) -> dict[Tenant, ObjectStore]: ...


@dataclass
class TenantPoint:
    tenant: Tenant
    newest: catalog.SnapshotEntry | None
    chosen: catalog.SnapshotEntry | None  # the newest complete snapshot: what is restored
    exposure_s: float | None


@dataclass
class DumpPoint:
    entry: catalog.MetadataEntry
    etag: str
    exposure_s: float


def describe_points(tenants: list[TenantPoint], dumps: dict[str, DumpPoint]) -> dict[str, Any]:
    """For the report: the recovery points restored (and each one's newest), with their ages."""
    return {
        "snapshots": [{"tenant": p.tenant.key, "snapshot": p.chosen.name if p.chosen else None,
                       "uuid": p.chosen.uuid if p.chosen else None,
                       "started_at": p.chosen.started_at.isoformat() if p.chosen and p.chosen.started_at else None,
                       "newest": p.newest.name if p.newest else None,
                       "newest_state": p.newest.state if p.newest else None,
                       "age_seconds": None if p.exposure_s is None else round(p.exposure_s, 3)}
                      for p in tenants],
        "dumps": [{"scope": scope, "key": d.entry.key, "size_bytes": d.entry.size, "etag": d.etag,
                   "checksum_record": d.entry.has_checksum, "taken_at": d.entry.taken_at.isoformat(),
                   "age_seconds": round(d.exposure_s, 3)} for scope, d in dumps.items()],
    }
