"""The metadata restore on the real services: decrypted straight into psql (no plaintext on
disk, watched), all or nothing (an incomplete dump or a failing statement leaves no table).

Each test restores into its own scratch database (never the session's ``es_metadata``)."""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from drdrill.adapters import crypto
from drdrill.adapters.platform import Endpoints, Platform
from drdrill.backups.take import backup_metadata
from drdrill.core import layout
from drdrill.drill.restore import restore_metadata
from drdrill.errors import BackupIntegrityError, RestoreFailed

pytestmark = pytest.mark.integration

PASSWORD = b"metadata restore test pass-phrase"


@pytest.fixture
def scratch(platform: Platform, endpoints: Endpoints, unique: str) -> Iterator[Platform]:
    """The platform with its metadata database swapped for an empty scratch one."""
    assert platform.admin is not None
    db = platform.db.with_database(f"drt_stream_{unique}")
    db.recreate_database(platform.admin)
    try:
        yield dataclasses.replace(platform, db=db)
    finally:
        with psycopg.connect(endpoints.pg_admin_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db.conn.database)))


def tables(db_platform: Platform) -> list[str]:
    with db_platform.db.connect() as conn:
        return sorted(r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall())


class DirectoryWatch:
    """Polls a directory tree and keeps the first bytes of every file it ever sees there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for folder, _dirs, files in os.walk(self.root):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        with open(path, "rb") as handle:
                            head = handle.read(16)
                    except OSError:
                        continue  # gone between listing and opening
                    if head or path not in self.seen:
                        self.seen[path] = head
            time.sleep(0.001)

    def __enter__(self) -> DirectoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload_dump(platform: Platform, scope: str, plaintext: bytes) -> str:
    """An encrypted dump as the backup job names it (no checksum record: a platform-made one)."""
    key = layout.metadata_key(scope, datetime.now(UTC))
    cipher = io.BytesIO()
    crypto.encrypt_stream(io.BytesIO(plaintext), cipher, PASSWORD)
    platform.store.put_bytes(key, cipher.getvalue())
    return key


def test_the_dump_is_decrypted_into_psql_and_never_lies_on_disk_in_plaintext(platform, scratch, unique, tmp_path):
    org = f"o{unique}"
    platform.db.replace_tenant_rows(org, "ns1", {f"{org}-ns1-a": 11, f"{org}-ns1-b": 12}, f"{org}-ns1")
    try:
        backup = backup_metadata(platform, layout.ALL_SCOPE, PASSWORD, datetime.now(UTC))
        source = platform.db.row_counts(org)
        workdir = tmp_path / "work"
        workdir.mkdir()
        with DirectoryWatch(workdir) as watch:
            result = restore_metadata(scratch, layout.ALL_SCOPE, PASSWORD, crypto.RUNBOOK_DEFAULT,
                                      key=backup.key, workdir=workdir, timeout_s=120)
    finally:
        platform.db.delete_tenant_rows(org, "ns1")

    assert scratch.db.row_counts(org) == source == {(org, "ns1"): 2}
    assert result.checksum_verified and result.encryption is not None
    assert result.encryption.salted_header and result.encryption.refused_wrong_password
    # The watch saw the download (so it was looking), and nothing that was not ciphertext.
    assert watch.seen, "the watch saw no file at all: it cannot tell what was on disk"
    assert all(head.startswith(crypto.MAGIC) for head in watch.seen.values() if head), watch.seen
    assert not any(workdir.iterdir()), "the restore left files behind"


def test_an_incomplete_dump_is_refused_and_none_of_it_is_committed(platform, scratch, unique):
    whole = io.BytesIO()
    platform.db.dump_all(whole)
    text = whole.getvalue()
    trailer = text.rindex(b"-- PostgreSQL database dump complete")
    assert b"CREATE TABLE" in text[:trailer]
    key = upload_dump(platform, f"o{unique}", text[:trailer])  # every statement, no trailer

    with pytest.raises(BackupIntegrityError, match="incomplete dump"):
        restore_metadata(scratch, f"o{unique}", PASSWORD, crypto.RUNBOOK_DEFAULT, key=key, timeout_s=120)
    assert tables(scratch) == [], "statements of an incomplete dump were committed"

    # The same dump whole restores: what was refused was the missing trailer, nothing else.
    key = upload_dump(platform, f"o{unique}", text)
    restore_metadata(scratch, f"o{unique}", PASSWORD, crypto.RUNBOOK_DEFAULT, key=key, timeout_s=120)
    assert "tenant_containers" in tables(scratch)


def test_a_failing_statement_rolls_the_whole_dump_back(platform, scratch, unique):
    dump = (b"--\n-- PostgreSQL database dump\n--\n"
            b"CREATE TABLE early (id int);\nINSERT INTO early VALUES (1);\n"
            b"SELECT 1/0;\n"
            b"CREATE TABLE late (id int);\n--\n-- PostgreSQL database dump complete\n--\n")
    key = upload_dump(platform, f"o{unique}", dump)
    with pytest.raises(RestoreFailed, match="division by zero"):
        restore_metadata(scratch, f"o{unique}", PASSWORD, crypto.RUNBOOK_DEFAULT, key=key, timeout_s=120)
    assert tables(scratch) == []
