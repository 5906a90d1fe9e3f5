"""The metadata dumps a restore reads: fetched and checked against their checksum record, then
decrypted as a stream — into psql, or only to be checked — never into a plaintext file.

Decryption problems and an incomplete dump only show at the end of the stream, so the last
bytes are held back from psql until both are known; with psql's single transaction, a dump
that fails either check is never committed."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from drdrill.adapters import crypto
from drdrill.adapters.platform import Platform
from drdrill.adapters.postgres import MetadataDb
from drdrill.backups import catalog
from drdrill.core import layout
from drdrill.core.completeness import DUMP_HEAD_BYTES, DUMP_TAIL_BYTES, dump_content_is_complete, dump_kind
from drdrill.errors import BackupIntegrityError, DecryptionError, RestoreFailed, ServiceError

log = logging.getLogger(__name__)

_PROOF_BLOCKS = 4
_WRONG_KEY_HINT = ("check the dump password (dump_password_env or dump_password_file) and the key derivation "
                   "([encryption] md, pbkdf2, iterations) against the backup job's openssl enc options")


@dataclass(frozen=True)
class EncryptionProof:
    """That a dump is the runbook's AES-256 format and unreadable without its password."""

    salted_header: bool  # begins with openssl's "Salted__" and a salt
    refused_wrong_password: bool  # another password turns its start into something else


@dataclass
class FetchedDump:
    """A dump object downloaded (still encrypted) and checked against its checksum record."""

    key: str
    scope: str
    cipher: Path
    sha256: str
    size_bytes: int
    checksum_verified: bool
    notes: list[str] = field(default_factory=list)
    # Known once it has been decrypted (checked or loaded).
    encryption: EncryptionProof | None = None
    plaintext_bytes: int | None = None


def newest_dump(platform: Platform, scope: str) -> catalog.MetadataEntry:
    """The newest complete dump of ``scope`` (by the timestamp in its name)."""
    entries = [e for e in catalog.metadata_entries(platform.store, scope) if e.scope == scope]
    complete = [e for e in entries if e.complete]
    if not complete:
        skipped = f" ({len(entries)} incomplete: {entries[-1].key} ...)" if entries else ""
        raise RestoreFailed(f"no complete metadata dump under {layout.METADATA_PREFIX}{scope}/ in bucket "
                            f"{platform.store.bucket}{skipped}", hint="has the metadata backup job run?")
    return complete[-1]


def fetch_dump(platform: Platform, key: str, into: Path, scope: str,
               progress: Callable[[str], None] | None = None) -> FetchedDump:
    """Check the checksum record exists before anything else, download the (encrypted) object
    into ``into`` and compare. Raises :class:`BackupIntegrityError` when they differ."""
    notes: list[str] = []
    expected = None
    checksum_key = layout.checksum_key(key)
    if platform.store.exists(checksum_key):
        expected = layout.parse_checksum_record(platform.store.get_bytes(checksum_key).decode(errors="replace"), key)
    else:
        notes.append(f"{key} has no checksum record (made by the platform's own scripts?): "
                     "integrity checked by the dump's completeness instead")
    cipher = into / "dump.sql.enc"
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
    return FetchedDump(key, scope, cipher, digest, cipher.stat().st_size, expected is not None, notes)


class HeldBack:
    """Passes plaintext on, except its last :data:`DUMP_TAIL_BYTES`, which wait for
    :meth:`release`; keeps the first :data:`DUMP_HEAD_BYTES` too. What the completeness check
    reads, without a copy of the dump anywhere."""

    def __init__(self, dst: crypto.Writer) -> None:
        self._dst = dst
        self.head = b""
        self._tail = bytearray()
        self.total = 0

    def write(self, data: bytes, /) -> int:
        if len(self.head) < DUMP_HEAD_BYTES:
            self.head += data[: DUMP_HEAD_BYTES - len(self.head)]
        self.total += len(data)
        self._tail += data
        if len(self._tail) > DUMP_TAIL_BYTES:
            cut = len(self._tail) - DUMP_TAIL_BYTES
            self._dst.write(bytes(self._tail[:cut]))
            del self._tail[:cut]
        return len(data)

    @property
    def tail(self) -> bytes:
        return bytes(self._tail)

    def release(self) -> None:
        self._dst.write(bytes(self._tail))
        self._tail.clear()


class _Discard:
    def write(self, data: bytes, /) -> int:
        return len(data)


def _decrypt_checked(dump: FetchedDump, password: bytes, kdf: crypto.KdfSpec, dst: crypto.Writer) -> None:
    """Decrypt ``dump`` into ``dst`` and release its last bytes only when it decrypted whole
    and ends as its format ends; records the encryption proof and plaintext size on ``dump``."""
    held = HeldBack(dst)
    try:
        with open(dump.cipher, "rb") as src:
            crypto.decrypt_stream(src, held, password, kdf)
    except DecryptionError as exc:
        raise DecryptionError(f"{dump.key} cannot be decrypted: {exc.message}", key=dump.key, hint=exc.hint) from exc
    # Valid padding proves nothing (a wrong key passes about once in 256): the start tells.
    kind = dump_kind(held.head, dump.scope)
    if kind == "not_a_dump":
        expected = "pg_dump's output" if dump.scope == layout.ALL_SCOPE else "a dump"
        raise DecryptionError(
            f"{dump.key} cannot be decrypted: wrong password or key derivation ({kdf.describe()} turns it "
            f"into bytes that do not begin as {expected})", key=dump.key, hint=_WRONG_KEY_HINT)
    dump.plaintext_bytes = held.total
    dump.encryption = _encryption_proof(dump.cipher, held.head, password, kdf)
    complete = dump_content_is_complete(held.head, held.tail, dump.scope)
    if complete is None:
        what = "pg_dump's custom format" if kind == "pg_dump_custom" else "not pg_dump's or drdrill's"
        dump.notes.append(f"{dump.key} decrypts completely, but its format is {what}: whether it is complete is "
                          "not known")
    elif not complete:
        raise BackupIntegrityError(f"{dump.key} decrypts to an incomplete dump "
                                   f"({'empty' if not held.total else 'no end-of-dump trailer'})",
                                   key=dump.key, hint="the backup job was probably interrupted")
    held.release()


def check_dump(dump: FetchedDump, password: bytes, kdf: crypto.KdfSpec) -> None:
    """Decrypt to nowhere: that the dump decrypts whole and is complete, nothing restored."""
    _decrypt_checked(dump, password, kdf, _Discard())


def load_dump(db: MetadataDb, dump: FetchedDump, password: bytes, kdf: crypto.KdfSpec, *, timeout_s: float) -> None:
    """Decrypt straight into psql, all or nothing: a dump that does not decrypt or is incomplete
    is refused before psql could commit any of it."""
    db.restore_stream(lambda sink: _decrypt_checked(dump, password, kdf, sink), label=dump.key,
                      timeout_s=timeout_s)
    log.info("loaded %s (%d bytes of SQL) into %s", dump.key, dump.plaintext_bytes or 0, db.conn.database)


def _encryption_proof(cipher: Path, plain_head: bytes, password: bytes, kdf: crypto.KdfSpec) -> EncryptionProof:
    with open(cipher, "rb") as handle:
        head = handle.read(crypto.HEADER_SIZE + _PROOF_BLOCKS * crypto.BLOCK_SIZE)
    start = plain_head[: _PROOF_BLOCKS * crypto.BLOCK_SIZE]
    wrong = secrets.token_bytes(24)
    try:
        refused = crypto.decrypt_head(head, wrong, kdf, blocks=_PROOF_BLOCKS)[: len(start)] != start
    except DecryptionError:
        refused = True
    return EncryptionProof(head.startswith(crypto.MAGIC), refused and wrong != password)
