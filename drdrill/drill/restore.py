"""Restore procedures, as the runbook's steps 3 and 4, made strict."""

from __future__ import annotations

import io
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from drdrill.adapters import crypto
from drdrill.adapters.platform import Platform
from drdrill.core import layout
from drdrill.core.layout import Tenant
from drdrill.core.ownership import copies_directory_name, scratch_database_name
from drdrill.drill.dumps import EncryptionProof, FetchedDump, fetch_dump, load_dump, newest_dump
from drdrill.errors import RestoreFailed

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


def restore_copies(repo_root: Path, drill_id: str) -> Path:
    """Where a drill's fresh copies of repositories go (under ``path.repo``): its own directory,
    removed whole afterwards."""
    return repo_root / copies_directory_name(drill_id)
