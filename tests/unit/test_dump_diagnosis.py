"""A dump decrypted with the wrong password is told apart from an incomplete one by its start.

``openssl enc`` has no password check: a wrong key yields garbage that ends in valid PKCS#7
padding about once in 256 tries. Such garbage must read as "wrong password", never as "incomplete".
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from drdrill.adapters.crypto import RUNBOOK_DEFAULT, KdfSpec, decrypt_stream, encrypt_file
from drdrill.core.completeness import DUMP_HEAD_BYTES, DUMP_TAIL_BYTES, dump_content_is_complete, dump_kind
from drdrill.drill.dumps import FetchedDump, check_dump
from drdrill.errors import BackupIntegrityError, DecryptionError

PASSWORD = b"the right one"
SALT = bytes.fromhex("0123456789abcdef")
# Each wrong password passes the padding check with probability ~1/255: P(none in 4000) ~ e^-15.
WRONG_TRIES = 4000

PG_DUMP = (
    b"--\n-- PostgreSQL database dump\n--\n\n"
    b"\\restrict 9fK2xLqP0aZ7\n\n"
    b"-- Dumped from database version 16.4\n-- Dumped by pg_dump version 16.4\n\n"
    b"SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n"
    b"SET standard_conforming_strings = on;\n"
    b"SELECT pg_catalog.set_config('search_path', '', false);\n\n"
    b"CREATE TABLE public.organisations (\n    id integer NOT NULL,\n    name text NOT NULL\n);\n\n"
    b"COPY public.organisations (id, name) FROM stdin;\n1\tAcme\n2\tGlobex \xc3\xa9t \xc3\xa0 Z\xc3\xbcrich\n\\.\n\n"
    b"ALTER TABLE ONLY public.organisations\n    ADD CONSTRAINT organisations_pkey PRIMARY KEY (id);\n\n"
    b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict 9fK2xLqP0aZ7\n\n"
)
EXPORT = (b"-- drdrill per-organisation export\nBEGIN;\nDELETE FROM public.projects WHERE org_id = 7;\n"
          b"COPY public.projects (id, org_id, name) FROM stdin;\n" + b"".join(
              b"%d\t7\tproject %d\n" % (i, i) for i in range(40)) + b"\\.\nCOMMIT;\n")
OWN_SCRIPT = b"".join(b"%d\tacme\t2025-01-0%d 10:00:00+00\tactive\n" % (i, i % 9 + 1) for i in range(60))


def _complete(text: bytes, scope: str) -> bool | None:
    return dump_content_is_complete(text[:DUMP_HEAD_BYTES], text[-DUMP_TAIL_BYTES:], scope)


# --- the classifier (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(("head", "scope", "kind"), [
    (PG_DUMP, "all", "pg_dump"),
    (PG_DUMP, "org1", "pg_dump"),
    (b"-- PostgreSQL database dump\n", "all", "pg_dump"),
    (b"--\r\n-- PostgreSQL database dump\r\n--\r\n", "all", "pg_dump"),
    (b"--\n-- Postgre", "all", "pg_dump"),  # cut inside the header: a dump cut short
    (b"", "all", "pg_dump"),  # pg_dump wrote nothing: cut short, not garbage
    (b"PGDMP\x01\x0f\x00\x04\x08\x01\x01", "all", "pg_dump_custom"),
    (b"PGDMP\x01\x0f\x00\x04\x08\x01\x01", "org1", "pg_dump_custom"),
    (EXPORT, "org1", "drdrill_export"),
    (EXPORT, "all", "not_a_dump"),  # the whole database is always pg_dump's
    (OWN_SCRIPT, "org1", "unknown_text"),
    (OWN_SCRIPT, "all", "not_a_dump"),
    (b"", "org1", "unknown_text"),  # an organisation without rows
    (b"1\tZ\xc3\xbcrich\r\n", "org1", "unknown_text"),
    (bytes(range(256)) * 2, "org1", "not_a_dump"),
    (b"1\tacme\x00\x01\n", "org1", "not_a_dump"),  # clean UTF-8 but raw control characters
    (b"1\tacme\xc2\x85\n", "org1", "not_a_dump"),  # a C1 control (NEL)
    (b"1\tacme\xff\xfe\n", "org1", "not_a_dump"),  # not UTF-8
])
def test_dump_kind(head, scope, kind):
    assert dump_kind(head[:DUMP_HEAD_BYTES], scope) == kind


def test_head_cut_inside_a_multibyte_character_is_still_text():
    text = ("1\t" + "a" * (DUMP_HEAD_BYTES - 4) + "Zürich\n").encode()
    head = text[:DUMP_HEAD_BYTES]
    with pytest.raises(UnicodeDecodeError):
        head.decode()  # the cut falls inside "ü"
    assert dump_kind(head, "org1") == "unknown_text"
    assert dump_kind(b"1\tZ\xc3", "org1") == "unknown_text"  # a short dump ending mid-character
    assert dump_kind(b"1\tZ\xc3A", "org1") == "not_a_dump"  # broken inside, not at the end


def test_random_heads_are_never_text():
    rng = random.Random(20)
    assert all(dump_kind(rng.randbytes(DUMP_HEAD_BYTES), "org1") == "not_a_dump" for _ in range(2000))
    assert all(dump_kind(rng.randbytes(15), "all") == "not_a_dump" for _ in range(2000))


def test_completeness_of_genuine_dumps_is_unchanged():
    assert _complete(PG_DUMP, "all") is True and _complete(PG_DUMP, "org1") is True
    assert _complete(PG_DUMP[:300], "all") is False
    assert _complete(EXPORT, "org1") is True and _complete(EXPORT[:-3], "org1") is False
    assert _complete(OWN_SCRIPT, "org1") is None
    assert _complete(b"PGDMP\x01\x0f\x00", "all") is None
    assert _complete(b"", "all") is False and _complete(b"", "org1") is None
    assert _complete(bytes(range(256)) * 4, "org1") is False


# --- through check_dump, as the restore test decrypts -------------------------------------


def _encrypted(tmp_path: Path, plaintext: bytes, kdf: KdfSpec = RUNBOOK_DEFAULT, scope: str = "all") -> FetchedDump:
    plain, cipher = tmp_path / "dump.sql", tmp_path / "dump.sql.enc"
    plain.write_bytes(plaintext)
    encrypt_file(plain, cipher, PASSWORD, kdf, salt=SALT)
    plain.unlink()
    return FetchedDump(f"metadata/{scope}/dump.sql.enc", scope, cipher, "0" * 64, cipher.stat().st_size, False)


@pytest.mark.parametrize(("plaintext", "scope"), [(PG_DUMP, "all"), (PG_DUMP, "org1"), (EXPORT, "org1")])
def test_wrong_passwords_are_never_incomplete(tmp_path, plaintext, scope):
    dump = _encrypted(tmp_path, plaintext, scope=scope)
    cipher = dump.cipher.read_bytes()
    padding_valid = 0
    for i in range(WRONG_TRIES):
        wrong = b"wrong password %d" % i
        with pytest.raises(DecryptionError) as caught:
            check_dump(dump, wrong, RUNBOOK_DEFAULT)
        message = caught.value.message
        assert "wrong password" in message and "incomplete" not in message, message
        if "bad padding" not in message:
            decrypt_stream(io.BytesIO(cipher), io.BytesIO(), wrong)  # it did pass the padding check
            assert "md, pbkdf2" in (caught.value.hint or "") and "dump_password" in (caught.value.hint or "")
            padding_valid += 1
    print(f"{padding_valid} of {WRONG_TRIES} wrong passwords passed the padding check")
    assert padding_valid >= 1
    assert dump.plaintext_bytes is None and dump.notes == []


def test_right_password_checks_whole_and_truncated_dumps(tmp_path):
    check_dump(_encrypted(tmp_path, PG_DUMP), PASSWORD, RUNBOOK_DEFAULT)
    for cut in (PG_DUMP[:-80], PG_DUMP[:200], PG_DUMP[:20], b""):
        with pytest.raises(BackupIntegrityError) as caught:
            check_dump(_encrypted(tmp_path, cut), PASSWORD, RUNBOOK_DEFAULT)
        assert not isinstance(caught.value, DecryptionError)
        assert "incomplete" in caught.value.message and "wrong password" not in caught.value.message


def test_own_script_dump_decrypts_with_a_note(tmp_path):
    dump = _encrypted(tmp_path, OWN_SCRIPT, scope="org1")
    check_dump(dump, PASSWORD, RUNBOOK_DEFAULT)
    assert dump.plaintext_bytes == len(OWN_SCRIPT)
    assert len(dump.notes) == 1 and "not known" in dump.notes[0]


def test_wrong_key_derivation_is_wrong_password(tmp_path):
    dump = _encrypted(tmp_path, PG_DUMP, kdf=KdfSpec(md="md5"))
    with pytest.raises(DecryptionError, match="wrong password"):
        check_dump(dump, PASSWORD, RUNBOOK_DEFAULT)
