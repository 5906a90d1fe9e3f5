"""Restore procedures, as the runbook's steps 3 and 4, made strict."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drdrill.adapters import crypto
from drdrill.adapters.elasticsearch import ShardRecovery
from drdrill.adapters.platform import Platform
from drdrill.backups import catalog, repo_sync
from drdrill.core import layout
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.errors import BackupIntegrityError, DecryptionError, RestoreFailed, ServiceError

log = logging.getLogger(__name__)

# How a complete dump ends: pg_dump's own trailer, and drdrill's per-organisation export.
_DUMP_TRAILERS = (b"-- PostgreSQL database dump complete", b"COMMIT;")


@dataclass(frozen=True)
class EncryptionProof:
    """That a dump is the runbook's AES-256 format and unreadable without its password."""

    salted_header: bool  # begins with openssl's "Salted__" and a salt
    refused_wrong_password: bool  # another password turns its start into something else


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


def newest_dump(platform: Platform, scope: str) -> catalog.MetadataEntry:
    """The newest complete dump of ``scope`` (by the timestamp in its name)."""
    entries = [e for e in catalog.metadata_entries(platform.store, scope) if e.scope == scope]
    complete = [e for e in entries if e.complete]
    if not complete:
        skipped = f" ({len(entries)} incomplete: {entries[-1].key} ...)" if entries else ""
        raise RestoreFailed(f"no complete metadata dump under {layout.METADATA_PREFIX}{scope}/ in bucket "
                            f"{platform.store.bucket}{skipped}", hint="has the metadata backup job run?")
    return complete[-1]


_EXPORT_HEADER = b"-- drdrill per-organisation export"
_PG_DUMP_HEADER = b"-- PostgreSQL database dump"


def _dump_is_complete(path: Path, scope: str) -> bool | None:
    """The dump ends with the trailer its kind always ends with, as its final line. The whole
    database is pg_dump's; an organisation's dump is drdrill's export or pg_dump's, told by its
    header; None for a format drdrill does not know (the platform's own per-org script)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
        if scope == layout.ALL_SCOPE or _PG_DUMP_HEADER in head:
            trailer = _DUMP_TRAILERS[0]
        elif head.startswith(_EXPORT_HEADER):
            trailer = _DUMP_TRAILERS[1]
        else:
            return None
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 4096))
        # After its trailer pg_dump writes a "--" comment line and, since the 2025 security
        # releases, an "\\unrestrict <key>" meta-command; neither is data.
        lines = [line.strip() for line in handle.read().splitlines()
                 if line.strip() not in (b"", b"--") and not line.startswith(b"\\unrestrict")]
    return bool(lines) and lines[-1] == trailer


@dataclass
class FetchedDump:
    key: str
    plain: Path
    sha256: str
    size_bytes: int
    checksum_verified: bool
    notes: list[str]
    encryption: EncryptionProof | None = None


def fetch_dump(platform: Platform, key: str, password: bytes, kdf: crypto.KdfSpec, into: Path,
               scope: str, progress: Callable[[str], None] | None = None) -> FetchedDump:
    """Check the checksum record before anything else, download, verify, decrypt, and check
    the dump is complete. Raises :class:`BackupIntegrityError` for anything doubtful."""
    notes: list[str] = []
    expected = None
    checksum_key = layout.checksum_key(key)
    if platform.store.exists(checksum_key):
        expected = layout.parse_checksum_record(platform.store.get_bytes(checksum_key).decode(errors="replace"), key)
    else:
        notes.append(f"{key} has no checksum record (made by the platform's own scripts?): "
                     "integrity checked by the dump's completeness instead")
    cipher, plain = into / "dump.sql.enc", into / "dump.sql"
    try:
        platform.store.download_file(key, cipher, progress=progress)
    except ServiceError as exc:
        raise RestoreFailed(f"cannot download {key}: {exc.message}", hint=exc.hint) from exc
    with open(cipher, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if expected is not None and digest != expected:
        raise BackupIntegrityError(
            f"{key} does not match its checksum record (sha256 {digest[:16]}…, recorded {expected[:16]}…)",
            key=key, hint="the object was altered or truncated after the backup; use an older dump")
    try:
        crypto.decrypt_file(cipher, plain, password, kdf)
    except DecryptionError as exc:
        raise DecryptionError(f"{key} cannot be decrypted: {exc.message}", key=key, hint=exc.hint) from exc
    encryption = _encryption_proof(cipher, plain, password, kdf)
    complete = _dump_is_complete(plain, scope)
    if complete is None:
        notes.append(f"{key} decrypts completely, but its format is not pg_dump's or drdrill's: whether it is "
                     "complete is not known")
    elif not complete:
        raise BackupIntegrityError(f"{key} decrypts to an incomplete dump (no end-of-dump trailer)",
                                   key=key, hint="the backup job was probably interrupted")
    return FetchedDump(key, plain, digest, cipher.stat().st_size, expected is not None, notes, encryption)


def _encryption_proof(cipher: Path, plain: Path, password: bytes, kdf: crypto.KdfSpec) -> EncryptionProof:
    with open(cipher, "rb") as handle:
        head = handle.read(crypto.HEADER_SIZE + 4 * crypto.BLOCK_SIZE)
    with open(plain, "rb") as handle:
        start = handle.read(4 * crypto.BLOCK_SIZE)
    wrong = secrets.token_bytes(24)
    try:
        refused = crypto.decrypt_head(head, wrong, kdf)[: len(start)] != start
    except DecryptionError:
        refused = True
    return EncryptionProof(head.startswith(crypto.MAGIC), refused and wrong != password)


def restore_metadata(platform: Platform, scope: str, password: bytes, kdf: crypto.KdfSpec, *,
                     key: str | None = None, workdir: Path | None = None, timeout_s: float = 3600) -> MetadataRestore:
    """Restore the newest dump with psql semantics (stop at the first error). ``all`` goes into
    a freshly created database; an organisation's export replaces that organisation's rows."""
    started = time.monotonic()
    entry_key = key or newest_dump(platform, scope).key
    with tempfile.TemporaryDirectory(prefix="drdrill-restore-", dir=workdir) as tmp:
        dump = fetch_dump(platform, entry_key, password, kdf, Path(tmp), scope)
        if scope == layout.ALL_SCOPE:
            if platform.admin is None:
                raise RestoreFailed("restoring the whole database needs admin credentials to recreate it")
            platform.db.recreate_database(platform.admin)
        platform.db.restore_sql(dump.plain, timeout_s=timeout_s)
    result = MetadataRestore(scope, entry_key, dump.sha256, dump.size_bytes, dump.checksum_verified, kdf.describe(),
                             kdf.is_weak, time.monotonic() - started, dump.notes, dump.encryption)
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
        dump = fetch_dump(platform, entry_key, password, kdf, Path(tmp), tenant.org_id)
        schema = Path(tmp) / "schema.sql"
        with open(schema, "wb") as out:
            platform.db.dump_schema(out)
        scratch = platform.db.create_database(platform.admin, scratch_database_name(drill_id))
        try:
            scratch.restore_sql(schema, timeout_s=timeout_s)
            scratch.restore_sql(dump.plain, timeout_s=timeout_s)
            platform.db.copy_tenant_rows(scratch, tenant.org_id, tenant.namespace)
        finally:
            platform.db.drop_database(platform.admin, scratch.conn.database)
    result = MetadataRestore(tenant.key, entry_key, dump.sha256, dump.size_bytes, dump.checksum_verified,
                             kdf.describe(), kdf.is_weak, time.monotonic() - started, dump.notes, dump.encryption)
    log.info("restored rows of %s from %s in %.1fs", tenant, entry_key, result.seconds)
    return result


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
