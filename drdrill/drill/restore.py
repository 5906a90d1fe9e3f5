"""Restore procedures, as the runbook's steps 3 and 4, made strict."""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from drdrill.adapters import crypto
from drdrill.adapters.elasticsearch import ShardRecovery
from drdrill.adapters.platform import Platform
from drdrill.backups import catalog, repo_sync
from drdrill.core import layout
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.drill.dumps import EncryptionProof, FetchedDump, fetch_dump, load_dump, newest_dump
from drdrill.errors import RecoveryFailure, RestoreFailed, ServiceError

log = logging.getLogger(__name__)


@dataclass
class MetadataRestore:
    scope: str
    key: str
    sha256: str
    size_bytes: int
    checksum_verified: bool
    kdf: str
    kdf_weak: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    encryption: EncryptionProof | None = None


@dataclass
class SnapshotRestore:
    tenant: str
    repository: str
    snapshot: str
    uuid: str
    indices: tuple[str, ...]
    fetched_bytes: int
    fetch_seconds: float
    restore_seconds: float
    shards_total: int
    shards_failed: int
    shards: list[ShardRecovery] = field(default_factory=list)
    health: str = "unknown"
    # The names the indices were restored under (the same, unless restored beside the originals).
    restored_as: tuple[str, ...] = ()


def restore_metadata(platform: Platform, scope: str, password: bytes, kdf: crypto.KdfSpec, *,
                     key: str | None = None, workdir: Path | None = None, timeout_s: float = 3600) -> MetadataRestore:
    """Restore the newest dump with psql semantics (stop at the first error, all or nothing).
    ``all`` goes into a freshly created database; an organisation's export replaces that
    organisation's rows. Only the encrypted object is ever on disk."""
    started = time.monotonic()
    entry_key = key or newest_dump(platform, scope).key
    with tempfile.TemporaryDirectory(prefix="drdrill-restore-", dir=workdir) as tmp:
        dump = fetch_dump(platform, entry_key, Path(tmp), scope)
        if scope == layout.ALL_SCOPE:
            if platform.admin is None:
                raise RestoreFailed("restoring the whole database needs admin credentials to recreate it")
            platform.db.recreate_database(platform.admin)
        load_dump(platform.db, dump, password, kdf, timeout_s=timeout_s)
    result = _restored(dump, scope, kdf, time.monotonic() - started)
    log.info("restored metadata from %s in %.1fs", entry_key, result.seconds)
    return result


def restore_tenant_rows(platform: Platform, tenant: Tenant, password: bytes, kdf: crypto.KdfSpec, *,
                        drill_id: str, workdir: Path | None = None, timeout_s: float = 3600) -> MetadataRestore:
    """One tenant's rows from its organisation's newest dump, touching no other tenant: the
    export is loaded into a scratch database, and only this tenant's rows are copied back."""
    if platform.admin is None:
        raise RestoreFailed("a tenant restore needs admin credentials for its scratch database")
    started = time.monotonic()
    entry_key = newest_dump(platform, tenant.org_id).key
    with tempfile.TemporaryDirectory(prefix="drdrill-restore-", dir=workdir) as tmp:
        dump = fetch_dump(platform, entry_key, Path(tmp), tenant.org_id)
        schema = io.BytesIO()
        platform.db.dump_schema(schema)
        scratch = platform.db.create_database(platform.admin, scratch_database_name(drill_id))
        try:
            scratch.restore_stream(lambda sink: sink.write(schema.getvalue()), label="the schema",
                                   timeout_s=timeout_s)
            load_dump(scratch, dump, password, kdf, timeout_s=timeout_s)
            platform.db.copy_tenant_rows(scratch, tenant.org_id, tenant.namespace)
        finally:
            platform.db.drop_database(platform.admin, scratch.conn.database)
    result = _restored(dump, tenant.key, kdf, time.monotonic() - started)
    log.info("restored rows of %s from %s in %.1fs", tenant, entry_key, result.seconds)
    return result


def _restored(dump: FetchedDump, scope: str, kdf: crypto.KdfSpec, seconds: float) -> MetadataRestore:
    return MetadataRestore(scope, dump.key, dump.sha256, dump.size_bytes, dump.checksum_verified, kdf.describe(),
                           kdf.is_weak, seconds, dump.notes, dump.encryption)


RESTORE_COPIES_PREFIX = "drdrill-restore-"


def restore_copies(repo_root: Path, drill_id: str) -> Path:
    """Where a drill's fresh copies of repositories go (under ``path.repo``): its own directory,
    removed whole afterwards."""
    return repo_root / f"{RESTORE_COPIES_PREFIX}{drill_id}"


def scratch_database_name(drill_id: str) -> str:
    """A database name no platform uses, unique per drill (PostgreSQL keeps 63 bytes)."""
    return "drdrill_scratch_" + "".join(c if c.isalnum() else "_" for c in drill_id.lower())[:40]


def choose_snapshot(entries: list[catalog.SnapshotEntry], tenant: Tenant, name: str | None) -> catalog.SnapshotEntry:
    if name is not None:
        for entry in entries:
            if entry.name == name:
                if not entry.complete:
                    raise RestoreFailed(f"snapshot {name} of {tenant} is {entry.state}, not a complete recovery point")
                return entry
        raise RestoreFailed(f"snapshot {name} not found in {tenant}'s repository")
    newest = catalog.newest_complete_snapshot(entries)
    if newest is None:
        states = ", ".join(f"{e.name}={e.state}" for e in entries[-3:]) or "none at all"
        raise RestoreFailed(f"no complete snapshot in {tenant}'s repository ({states})",
                            hint=f"check the backup job for {tenant.repo_prefix}")
    return newest


def restore_tenant(platform: Platform, tenant: Tenant, drill_id: str, owners: TenantIndices, *,
                   timeout_s: float, snapshot: str | None = None, repository: str | None = None,
                   rename_prefix: str | None = None, progress: Callable[[str], None] | None = None) -> SnapshotRestore:
    """Fetch the tenant's repository from the object store (never the local copy), restore the
    newest complete snapshot, and wait until every shard is recovered and the indices green.
    ``owners`` (the platform's tenant → index map) says whether the snapshot is the tenant's.

    The repository is registered read-only, under ``repository`` (default: one per tenant);
    ``rename_prefix`` restores beside the originals instead of in their place."""
    entries = catalog.tenant_snapshots(platform.store, tenant)
    chosen = choose_snapshot(entries, tenant, snapshot)
    foreign = owners.foreign(tenant, chosen.indices)
    if foreign:
        raise RestoreFailed(f"snapshot {chosen.name} in {tenant}'s repository holds indices of another tenant: "
                            f"{', '.join(foreign[:3])}", hint=f"the repository at {tenant.repo_prefix} is not this "
                            "tenant's; check the backup job's path for each tenant")
    repository = repository or f"restore-{tenant.org_id}.{tenant.namespace}"
    fetch = repo_sync.SyncStats(0, 0, 0.0, 0)
    if platform.mirrors_repositories:
        assert platform.repo_root is not None
        location = restore_copies(platform.repo_root, drill_id) / tenant.org_id / tenant.namespace
        # Always a fresh copy: a blob left from an earlier restore must not stand in for
        # what MinIO holds now (the restore reads from the store of record only).
        shutil.rmtree(location, ignore_errors=True)
        fetch = repo_sync.fetch(platform.store, tenant.repo_prefix, location,
                                owner=repo_sync.owner_of(platform.repo_root))
        platform.cluster.register_fs_repository(repository, str(location), readonly=True)
    else:
        platform.cluster.register_s3_repository(repository, platform.store.bucket, tenant.repo_prefix, readonly=True)
    # What Elasticsearch itself says of the snapshot (the root blob has no shard counts).
    info = platform.cluster.snapshot(repository, chosen.name)
    if not info.complete:
        raise RestoreFailed(f"snapshot {chosen.name} of {tenant} is {info.state} with {info.shards_failed} failed "
                            f"shard(s) of {info.shards_total}", hint="not a usable recovery point")
    started = time.monotonic()
    summary = platform.cluster.restore(repository, chosen.name, list(chosen.indices), timeout_s,
                                       rename_prefix=rename_prefix, progress=progress)
    shards = summary.get("shards", {})
    restored = [f"{rename_prefix or ''}{index}" for index in chosen.indices]
    green, health = platform.cluster.wait_for_green(restored, max(5.0, timeout_s - (time.monotonic() - started)))
    restore_seconds = time.monotonic() - started
    recoveries = platform.cluster.recoveries(restored)
    result = SnapshotRestore(
        tenant=tenant.key, repository=repository, snapshot=chosen.name, uuid=chosen.uuid, indices=chosen.indices,
        fetched_bytes=fetch.bytes, fetch_seconds=fetch.seconds, restore_seconds=restore_seconds,
        shards_total=int(shards.get("total", 0)), shards_failed=int(shards.get("failed", 0)), shards=recoveries,
        health=health, restored_as=tuple(restored),
    )
    not_done = [f"{r.index}[{r.shard}] {r.stage}" for r in recoveries if r.stage.upper() != "DONE"]
    if result.shards_failed or not green or not_done:
        raise RestoreFailed(
            f"restore of {tenant} from {chosen.name} incomplete: {result.shards_failed} failed shard(s), "
            f"health {health}{'; not done: ' + ', '.join(not_done[:3]) if not_done else ''}",
            hint="see Elasticsearch's log and _cat/recovery")
    log.info("restored %s from %s: %d indices in %.1fs (+%.1fs fetch)", tenant, chosen.name, len(chosen.indices),
             restore_seconds, fetch.seconds)
    return result


@dataclass
class TenantRestores:
    """What a restore of several tenants established: each tenant's result or its failure, in
    the order the tenants were given (whatever order they finished in)."""

    restored: list[SnapshotRestore]
    failed: list[tuple[Tenant, RecoveryFailure]]
    concurrency: int
    seconds: float


@dataclass(frozen=True)
class TenantRestoreJob:
    """One tenant's restore, as :func:`restore_tenants` runs it."""

    tenant: Tenant
    snapshot: str | None = None
    repository: str | None = None


def restore_tenants(platform: Platform, jobs: Sequence[TenantRestoreJob], drill_id: str, owners: TenantIndices, *,
                    timeout_s: float, concurrency: int, rename_prefix: str | None = None,
                    progress: Callable[[str], None] | None = None) -> TenantRestores:
    """Restore tenants with at most ``concurrency`` in flight: while Elasticsearch restores one
    tenant's shards, the next tenants' repositories are being copied and registered, so the
    per-tenant round trips overlap instead of adding up. Elasticsearch's own limits still
    apply (it queues the shards beyond ``node_initial_primaries_recoveries``).

    Every tenant is tried and judged as strictly as alone: one failing does not stop the others,
    and each failure keeps its own message. A failure that is not the platform's (a bug) is
    re-raised once all have finished."""
    started = time.monotonic()
    done = 0
    lock = threading.Lock()

    def one(job: TenantRestoreJob) -> SnapshotRestore:
        nonlocal done
        tell = None if progress is None else (lambda message: progress(f"{job.tenant}: {message}"))
        try:
            return restore_tenant(platform, job.tenant, drill_id, owners, timeout_s=timeout_s, snapshot=job.snapshot,
                                  repository=job.repository, rename_prefix=rename_prefix, progress=tell)
        finally:
            with lock:
                done += 1
                if progress is not None and len(jobs) > 1:
                    progress(f"restored {done}/{len(jobs)} tenants ({time.monotonic() - started:.0f}s)")

    restored: list[SnapshotRestore] = []
    failed: list[tuple[Tenant, RecoveryFailure]] = []
    bug: BaseException | None = None
    workers = max(1, min(concurrency, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as pool:
        futures = [(job.tenant, pool.submit(one, job)) for job in jobs]
        for tenant, future in futures:
            try:
                restored.append(future.result())
            except RecoveryFailure as exc:
                failed.append((tenant, _naming(tenant, exc)))
            except ServiceError as exc:  # a service failing during recovery is the platform failing
                failed.append((tenant, _naming(tenant, RestoreFailed(exc.message, hint=exc.hint))))
            except BaseException as exc:
                bug = bug or exc
    if bug is not None:
        raise bug
    return TenantRestores(restored, failed, workers, time.monotonic() - started)


def _naming(tenant: Tenant, failure: RecoveryFailure) -> RecoveryFailure:
    """The failure, saying which tenant it is about (once)."""
    if str(tenant) not in failure.message:
        failure.message = f"tenant {tenant}: {failure.message}"
        failure.args = (failure.message,)
    return failure
