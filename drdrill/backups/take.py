"""The reference backup procedure: per-tenant Elasticsearch snapshots into the tenant's prefix,
and encrypted metadata dumps with checksum records, as the platform's nightly job does."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from drdrill.adapters import crypto
from drdrill.adapters.platform import Platform
from drdrill.adapters.s3 import ObjectStore
from drdrill.backups import catalog, repo_sync
from drdrill.core import layout
from drdrill.core.completeness import snapshot_is_complete
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.errors import BackupFailed, DrdrillError, ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotBackup:
    tenant: str
    repository: str
    snapshot: str
    uuid: str
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    indices: tuple[str, ...]
    shards_failed: int
    size_bytes: int
    snapshot_seconds: float
    upload_objects: int
    upload_bytes: int
    upload_seconds: float
    # Wall times around the snapshot call, taken here: Elasticsearch's own start/end times
    # come from a clock it caches (~200 ms steps), too coarse to bound which writes it holds.
    call_began: datetime | None = None
    call_ended: datetime | None = None
    # The repository's max_snapshot_bytes_per_sec when the snapshot ran, e.g. "40mb".
    snapshot_throttle: str | None = None

    @property
    def complete(self) -> bool:
        return snapshot_is_complete(self.state, self.shards_failed)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat() if self.started_at else None
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        data["call_began"] = self.call_began.isoformat() if self.call_began else None
        data["call_ended"] = self.call_ended.isoformat() if self.call_ended else None
        data["complete"] = self.complete
        return data


@dataclass(frozen=True)
class MetadataBackup:
    scope: str
    key: str
    checksum_key: str
    sha256: str
    size_bytes: int
    started_at: datetime
    seconds: float
    kdf: str
    # Wall times of the dump itself (started_at is the nominal backup-set time in the name):
    # pg_dump's snapshot is taken at dump_began.
    dump_began: datetime
    dump_ended: datetime

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        for name in ("started_at", "dump_began", "dump_ended"):
            data[name] = getattr(self, name).isoformat()
        return data


def backup_repository_location(platform: Platform, tenant: Tenant) -> Path:
    assert platform.repo_root is not None
    return platform.repo_root / "backup" / tenant.org_id / tenant.namespace


def register_backup_repository(platform: Platform, tenant: Tenant, store: ObjectStore | None = None) -> str:
    """Make the tenant's repository usable for writing. Local target: refresh the local `fs`
    copy from the object store first (with ``store``: the tenant's own credentials), so
    Elasticsearch continues the repository's generations and snapshots incrementally instead of
    forking a second history."""
    name = tenant.repository_name
    if platform.repo_root is not None:
        location = backup_repository_location(platform, tenant)
        repo_sync.fetch(store or platform.store, tenant.repo_prefix, location,
                        owner=repo_sync.owner_of(platform.repo_root))
        platform.cluster.register_fs_repository(name, str(location))
    else:
        platform.cluster.register_s3_repository(name, platform.store.bucket, tenant.repo_prefix)
    return name


# What drdrill writes carries this tag (snapshot metadata, object metadata), and retention
# deletes only what carries it: a name alone could be anybody's.
CREATED_BY = {catalog.CREATED_BY_KEY: catalog.CREATED_BY_VALUE}


def tenant_indices(platform: Platform, tenant: Tenant, owners: TenantIndices) -> list[str]:
    """The tenant's indices by the platform's own mapping; every one of them must exist."""
    indices = owners.indices_of(tenant)
    if not indices:
        raise BackupFailed(f"tenant {tenant} has no rows in tenant_containers, so no index to snapshot",
                           hint="is the tenant known to the platform?")
    present = platform.cluster.indices_named(indices)
    missing = [i for i in indices if i not in present]
    if missing:
        raise BackupFailed(f"tenant_containers names indices of {tenant} that do not exist: "
                           f"{', '.join(missing[:5])}", hint="the metadata and the cluster disagree")
    return indices


def backup_snapshot(platform: Platform, tenant: Tenant, at: datetime, owners: TenantIndices, *,
                    timeout_s: float = 1800, progress: Callable[[str], None] | None = None,
                    store: ObjectStore | None = None) -> SnapshotBackup:
    """Snapshot exactly the tenant's indices; anything but a complete snapshot raises
    :class:`BackupFailed` (after the result is published, as the platform's job would).
    ``store``: the tenant's own view of the bucket, which its repository is copied with."""
    indices = tenant_indices(platform, tenant, owners)
    repository = register_backup_repository(platform, tenant, store)
    name = layout.snapshot_name(at)
    throttle = platform.cluster.snapshot_throttle(repository)
    started = time.monotonic()
    call_began = datetime.now(UTC)
    info = platform.cluster.create_snapshot(repository, name, indices, timeout_s,
                                            metadata={**CREATED_BY, "tenant": tenant.key}, progress=progress)
    call_ended = datetime.now(UTC)
    snapshot_seconds = time.monotonic() - started
    size = platform.cluster.snapshot_size(repository, name) if info.state in ("SUCCESS", "PARTIAL") else 0
    upload = repo_sync.SyncStats(0, 0, 0.0, 0)
    if platform.mirrors_repositories:
        upload = repo_sync.publish(store or platform.store, backup_repository_location(platform, tenant),
                                   tenant.repo_prefix)
    result = SnapshotBackup(
        tenant=tenant.key, repository=repository, snapshot=name, uuid=info.uuid, state=info.state,
        started_at=info.started_at, finished_at=info.finished_at, indices=info.indices,
        shards_failed=info.shards_failed, size_bytes=size, snapshot_seconds=snapshot_seconds,
        upload_objects=upload.objects, upload_bytes=upload.bytes, upload_seconds=upload.seconds,
        call_began=call_began, call_ended=call_ended, snapshot_throttle=throttle,
    )
    if not info.complete:
        detail = "; ".join(info.failures[:3]) or "no failure detail"
        raise BackupFailed(f"snapshot {name} of {tenant} ended {info.state} with {info.shards_failed} failed "
                           f"shard(s): {detail}")
    # The command (or the drill report) shows the result; this line is for the debug log only.
    log.debug("snapshot %s of %s: %d indices, %d bytes, %.1fs (+%.1fs upload)", name, tenant, len(info.indices),
              size, snapshot_seconds, upload.seconds)
    return result


def _encrypt_from_writer(produce: Callable[[BinaryIO], None], dst: crypto.Writer, password: bytes,
                         kdf: crypto.KdfSpec, timeout_s: float) -> None:
    """Run ``produce`` (which writes plaintext) in a thread feeding a pipe that is encrypted as
    it streams: no plaintext dump ever lands on disk, and memory stays constant."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as pipe_out:
                produce(pipe_out)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=writer, name="dump-writer", daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb", buffering=1 << 20) as pipe_in:
        crypto.encrypt_stream(pipe_in, dst, password, kdf)
    thread.join(timeout=timeout_s)  # the producer bounds itself; this is a backstop
    if thread.is_alive():
        raise ServiceError(f"metadata dump did not finish within {timeout_s:g}s")
    if failure:
        exc = failure[0]
        if isinstance(exc, DrdrillError):
            raise exc
        raise ServiceError(f"metadata dump failed: {exc}") from exc


def backup_metadata(platform: Platform, scope: str, password: bytes, at: datetime, *,
                    kdf: crypto.KdfSpec = crypto.RUNBOOK_DEFAULT, workdir: Path | None = None,
                    timeout_s: float = 1800, progress: Callable[[str], None] | None = None) -> MetadataBackup:
    """Dump (all, or one organisation's rows), encrypt in the runbook's openssl format, upload,
    then write the checksum record. The record goes last: its presence means the object is
    complete."""
    key = layout.metadata_key(scope, at)
    if platform.store.exists(key):
        # Keys have one-second resolution; never overwrite a recovery point.
        raise BackupFailed(f"{key} already exists in the backup store", hint="wait a second and run it again")
    started = time.monotonic()
    began = datetime.now(UTC)
    if scope == layout.ALL_SCOPE:
        def produce(out: BinaryIO) -> None:
            platform.db.dump_all(out, timeout_s=timeout_s)
    else:
        def produce(out: BinaryIO) -> None:
            platform.db.dump_org(scope, out, timeout_s=timeout_s)
    with tempfile.TemporaryDirectory(prefix="drdrill-dump-", dir=workdir) as tmp:
        cipher_path = Path(tmp) / Path(key).name
        with open(cipher_path, "wb") as raw:
            hashing = crypto.HashingWriter(raw)
            _encrypt_from_writer(produce, hashing, password, kdf, timeout_s + 30)
        ended = datetime.now(UTC)
        digest = hashing.hexdigest()
        size = cipher_path.stat().st_size
        platform.store.upload_file(cipher_path, key, tags=CREATED_BY, progress=progress)
    platform.store.put_bytes(layout.checksum_key(key), layout.checksum_record(digest, key).encode(), tags=CREATED_BY)
    result = MetadataBackup(scope, key, layout.checksum_key(key), digest, size, at, time.monotonic() - started,
                            kdf.describe(), began, ended)
    log.debug("metadata backup %s: %d bytes, sha256 %s…, %.1fs", key, size, digest[:12], result.seconds)
    return result


@dataclass(frozen=True)
class BackupSetResult:
    taken_at: datetime
    snapshots: tuple[SnapshotBackup, ...]
    metadata: tuple[MetadataBackup, ...]

    def to_dict(self) -> dict[str, object]:
        return {"taken_at": self.taken_at.isoformat(), "snapshots": [s.to_dict() for s in self.snapshots],
                "metadata": [m.to_dict() for m in self.metadata]}


def backup_set(platform: Platform, tenants: list[Tenant], at: datetime, password: bytes | None, *,
               snapshots: bool = True, metadata: bool = True, kdf: crypto.KdfSpec = crypto.RUNBOOK_DEFAULT,
               timeout_s: float = 1800, progress: Callable[[str], None] | None = None,
               tenant_stores: dict[Tenant, ObjectStore] | None = None) -> BackupSetResult:
    """The nightly job: a snapshot per tenant (its indices as tenant_containers maps them), the
    whole-database dump, and a dump per organisation of the chosen tenants."""
    say = progress or (lambda message: log.info("%s", message))
    snaps: list[SnapshotBackup] = []
    dumps: list[MetadataBackup] = []
    if metadata and password is None:
        raise BackupFailed("metadata backup needs an encryption password")
    if snapshots:
        owners = TenantIndices(platform.db.containers_index_names())
        for number, tenant in enumerate(tenants, 1):
            say(f"snapshot {number}/{len(tenants)}: {tenant}")
            snaps.append(backup_snapshot(platform, tenant, at, owners, timeout_s=timeout_s, progress=progress,
                                         store=(tenant_stores or {}).get(tenant)))
    if metadata:
        assert password is not None
        scopes = layout.metadata_scopes(tenants)
        for scope in scopes:
            say(f"metadata dump: {scope}")
            dumps.append(backup_metadata(platform, scope, password, at, kdf=kdf, timeout_s=timeout_s,
                                         progress=progress))
    return BackupSetResult(at, tuple(snaps), tuple(dumps))
