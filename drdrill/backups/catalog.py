"""What recovery points exist, read from the object store alone (no Elasticsearch needed).

A tenant's repository root holds ``index.latest`` (the current generation N as an 8-byte
big-endian number) and ``index-N`` (JSON naming every snapshot with its state and times); the
same for ``fs`` and ``s3`` repositories, so this works for backups drdrill took and for those
the platform's own job took.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drdrill.adapters.s3 import ObjectStore
from drdrill.core import layout
from drdrill.core.completeness import dump_is_complete, snapshot_is_complete
from drdrill.core.layout import Tenant
from drdrill.core.retention import RecoveryPoint
from drdrill.errors import BackupIntegrityError, ServiceError

log = logging.getLogger(__name__)

# drdrill's tag on what it writes (object metadata, snapshot metadata).
CREATED_BY_KEY, CREATED_BY_VALUE = "created-by", "drdrill"

# SnapshotState as Elasticsearch stores it in RepositoryData.
_STATES = {0: "IN_PROGRESS", 1: "SUCCESS", 2: "FAILED", 3: "PARTIAL", 4: "INCOMPATIBLE"}


@dataclass(frozen=True)
class SnapshotEntry:
    name: str
    uuid: str
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    indices: tuple[str, ...]
    # Each index's id in the repository (its blobs are under indices/<id>/), by name.
    index_ids: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    @property
    def complete(self) -> bool:
        return snapshot_is_complete(self.state)


@dataclass(frozen=True)
class MetadataEntry:
    scope: str
    key: str
    taken_at: datetime
    size: int
    has_checksum: bool
    # drdrill wrote it (its earlier ISO name, or its tag): complete only with its checksum record.
    # Asked only of dumps without a record, the one case where the answer matters.
    needs_checksum: bool
    iso_naming: bool = False

    @property
    def complete(self) -> bool:
        return dump_is_complete(self.size, has_checksum=self.has_checksum, needs_checksum=self.needs_checksum)


def parse_generation(data: bytes) -> int:
    if len(data) != 8:
        raise BackupIntegrityError(f"index.latest has {len(data)} bytes, expected 8")
    return int.from_bytes(data, "big")


def _millis(value: object) -> datetime | None:
    if not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def parse_repository_data(raw: bytes) -> list[SnapshotEntry]:
    """Snapshots listed in an ``index-N`` root blob, oldest first."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupIntegrityError(f"repository root blob is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BackupIntegrityError(f"repository root blob is JSON {type(data).__name__}, not an object")
    indices, snapshots = data.get("indices"), data.get("snapshots")
    if not isinstance(indices or {}, dict) or not isinstance(snapshots or [], list) \
            or not all(isinstance(s, dict) for s in snapshots or []) \
            or not all(isinstance(i, dict) for i in (indices or {}).values()):
        raise BackupIntegrityError("repository root blob does not have the RepositoryData shape "
                                   "(an object with 'snapshots' list and 'indices' map)")
    by_uuid: dict[str, list[str]] = {}
    ids: dict[str, str] = {}
    for index, info in (indices or {}).items():
        ids[index] = str(info.get("id") or "")
        for uuid in info.get("snapshots", []):
            by_uuid.setdefault(uuid, []).append(index)
    entries = []
    for snap in snapshots or []:
        state = snap.get("state")
        entries.append(SnapshotEntry(
            name=str(snap.get("name")), uuid=str(snap.get("uuid")),
            state=_STATES.get(state, str(state)) if isinstance(state, int) else str(state or "UNKNOWN"),
            started_at=_millis(snap.get("start_time_millis")), finished_at=_millis(snap.get("end_time_millis")),
            indices=tuple(sorted(by_uuid.get(str(snap.get("uuid")), []))),
            index_ids=tuple(sorted((i, ids[i]) for i in by_uuid.get(str(snap.get("uuid")), []))),
        ))
    return sorted(entries, key=lambda e: (e.started_at or datetime.min.replace(tzinfo=UTC), e.name))


def tenant_snapshots(store: ObjectStore, tenant: Tenant) -> list[SnapshotEntry]:
    """Snapshots in the tenant's repository prefix; [] when the prefix holds no repository."""
    prefix = tenant.repo_prefix
    if not store.exists(prefix + "index.latest"):
        generations = [o.key for o in store.list(prefix) if o.key[len(prefix):].startswith("index-")
                       and o.key[len(prefix) + 6:].isdigit()]
        if not generations:
            return []
        newest = max(generations, key=lambda k: int(k.rsplit("-", 1)[1]))
    else:
        newest = f"{prefix}index-{parse_generation(store.get_bytes(prefix + 'index.latest'))}"
    try:
        return parse_repository_data(store.get_bytes(newest))
    except ServiceError as exc:
        raise BackupIntegrityError(f"{newest} is missing or unreadable: {exc.message}", key=newest) from exc


def index_blob_bytes(store: ObjectStore, tenant: Tenant, entry: SnapshotEntry) -> dict[str, int]:
    """Per index of ``entry``: the bytes of its blobs in the tenant's repository, every
    generation's (an upper bound of what restoring it writes to a data node's disk)."""
    by_id = {index_id: name for name, index_id in entry.index_ids if index_id}
    sizes = dict.fromkeys(entry.indices, 0)
    base = tenant.repo_prefix + "indices/"
    for obj in store.list(base):
        name = by_id.get(obj.key[len(base):].split("/", 1)[0])
        if name is not None:
            sizes[name] += obj.size
    return sizes


def discover_tenants(store: ObjectStore) -> list[Tenant]:
    """Tenants whose prefix holds a repository root blob."""
    found = set()
    for obj in store.list(""):
        parts = obj.key.split("/")
        if len(parts) == 3 and (parts[2] == "index.latest" or parts[2].startswith("index-")) \
                and parts[0] != "metadata":
            try:
                found.add(Tenant(parts[0], parts[1]))
            except Exception:  # noqa: S112 - not a tenant prefix: ignore it
                continue
    return sorted(found)


def metadata_entries(store: ObjectStore, scope: str | None = None) -> list[MetadataEntry]:
    prefix = layout.METADATA_PREFIX + (f"{scope}/" if scope else "")
    objects = list(store.list(prefix))
    keys = {o.key for o in objects}
    entries = []
    for obj in objects:
        parsed = layout.parse_metadata_key(obj.key)
        if parsed is None:
            continue
        has_checksum = layout.checksum_key(obj.key) in keys
        # drdrill and the platform's job now name dumps alike: a runbook-named dump without a
        # record is the platform's (complete) unless it carries drdrill's tag (unfinished).
        needs = parsed.iso_naming or (not has_checksum and _tagged(store, obj.key))
        entries.append(MetadataEntry(parsed.scope, obj.key, parsed.taken_at, obj.size, has_checksum, needs,
                                     parsed.iso_naming))
    return sorted(entries, key=lambda e: (e.scope, e.taken_at))


def newest_complete_snapshot(entries: list[SnapshotEntry]) -> SnapshotEntry | None:
    complete = [e for e in entries if e.complete]
    return complete[-1] if complete else None


def recovery_points(store: ObjectStore, tenants: list[Tenant], *,
                    tagged_snapshots: set[tuple[str, str]] | None = None, dumps: bool = True) -> list[RecoveryPoint]:
    """Everything retention may consider. "Created by drdrill" needs drdrill's tag, not just its
    naming: ``tagged_snapshots`` holds ``(tenant key, name)`` of snapshots whose metadata says
    so (only Elasticsearch can read that), and a dump's object metadata is read here."""
    tagged = tagged_snapshots or set()
    points = []
    for tenant in tenants:
        for snap in tenant_snapshots(store, tenant):
            # drdrill's names carry the nominal backup time (the nightly slot, injectable in
            # tests); other snapshots are dated by when Elasticsearch started them.
            taken_at = layout.parse_snapshot_name(snap.name) or snap.started_at
            if taken_at is None:
                continue
            points.append(RecoveryPoint(
                kind="snapshot", scope=tenant.key, name_or_key=snap.name, taken_at=taken_at,
                complete=snap.complete, created_by_drdrill=(tenant.key, snap.name) in tagged,
            ))
    for entry in metadata_entries(store) if dumps else ():
        # Only dumps that could be drdrill's by their name and record are asked for the tag.
        ours = (entry.has_checksum or entry.iso_naming) and _tagged(store, entry.key)
        points.append(RecoveryPoint.metadata(entry.key, complete=entry.complete, created_by_drdrill=ours,
                                             has_checksum=entry.has_checksum))
    return points


def _tagged(store: ObjectStore, key: str) -> bool:
    return store.tags(key).get(CREATED_BY_KEY) == CREATED_BY_VALUE


def check_bucket_layout(store: ObjectStore) -> None:
    """Refuse (exit 2) to drill on, read or prune a bucket that is not laid out as the platform's."""
    from drdrill.errors import UsageError

    problems = layout.validate_bucket_layout(o.key for o in store.list(""))
    if problems:
        raise UsageError(f"bucket {store.bucket} is not laid out as the platform's backups: {problems[0]}",
                         hint="expected <org>/<namespace>/ snapshot repositories and metadata/<scope>/ dumps")
