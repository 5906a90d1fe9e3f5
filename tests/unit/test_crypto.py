"""drdrill.adapters.crypto against the `openssl` command line as the independent reference.

Passwords reach openssl through ``-pass env:VAR`` / ``-pass file:PATH``; only
``test_runbook_command_with_literal_k`` uses ``-k`` (the runbook's exact command) with a
throw-away password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import random
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drdrill.adapters.crypto import (
    CHUNK_SIZE,
    RUNBOOK_DEFAULT,
    HashingWriter,
    KdfSpec,
    decrypt_file,
    decrypt_stream,
    derive_key_iv,
    encrypt_file,
    encrypt_stream,
    read_password,
)
from drdrill.errors import DecryptionError, PasswordSourceError, UsageError

REPO = Path(__file__).resolve().parents[2]
PW_ENV = "DRDRILL_TEST_PASSWORD"
# Non-ASCII, spaces and shell metacharacters: the bytes must reach both sides unchanged.
PASSWORD = "pä ss wörd $HOME 'x' \"y\"".encode()
SALT = bytes.fromhex("0123456789abcdef")

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")

# The openssl options are spelled out independently of KdfSpec, so the tests
# also check drdrill's idea of openssl's defaults (digest sha256, -iter 10000 with -pbkdf2).
KDFS = [
    pytest.param(KdfSpec(md="md5"), ["-md", "md5"], id="md5"),
    pytest.param(KdfSpec(), [], id="sha256-default"),
    pytest.param(KdfSpec(pbkdf2=True), ["-pbkdf2"], id="pbkdf2"),
    pytest.param(KdfSpec(pbkdf2=True, iterations=1000), ["-pbkdf2", "-iter", "1000"], id="pbkdf2-iter1000"),
    pytest.param(
        KdfSpec(md="md5", pbkdf2=True, iterations=2000),
        ["-pbkdf2", "-md", "md5", "-iter", "2000"],
        id="pbkdf2-md5",
    ),
]
SIZES = [0, 1, 15, 16, 17, 1024 * 1024 + 3]


def plaintext(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def openssl_enc(args: list[str], password: bytes = PASSWORD) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, PW_ENV: os.fsdecode(password)}
    cmd = ["openssl", "enc", "-aes-256-cbc", *args, "-pass", f"env:{PW_ENV}"]
    return subprocess.run(cmd, env=env, check=True, capture_output=True)


def openssl_key_iv(kdf_args: list[str], salt: bytes, pass_arg: list[str] | None = None) -> tuple[str, str]:
    """Key and IV as printed by ``openssl enc -P`` (hex, upper case)."""
    if pass_arg is None:
        out = openssl_enc([*kdf_args, "-S", salt.hex(), "-P"]).stdout
    else:
        cmd = ["openssl", "enc", "-aes-256-cbc", *kdf_args, "-S", salt.hex(), "-P", *pass_arg]
        out = subprocess.run(cmd, check=True, capture_output=True).stdout
    # Lines like "key=83F1..." and "iv =7701..." (sic, with a space).
    fields = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.decode().splitlines())}
    return fields["key"], fields["iv"]


def dir_listing(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()}


# --- interoperability with openssl ----------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("kdf", "openssl_args"), KDFS)
def test_drdrill_encrypts_openssl_decrypts(tmp_path, kdf, openssl_args, size):
    data = plaintext(size)
    (tmp_path / "plain").write_bytes(data)
    written = encrypt_file(tmp_path / "plain", tmp_path / "enc", PASSWORD, kdf)

    enc = (tmp_path / "enc").read_bytes()
    assert written == len(enc) == 16 + (size // 16 + 1) * 16
    assert enc.startswith(b"Salted__")
    openssl_enc(["-d", "-salt", *openssl_args, "-in", str(tmp_path / "enc"), "-out", str(tmp_path / "dec")])
    assert (tmp_path / "dec").read_bytes() == data


@needs_openssl
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("kdf", "openssl_args"), KDFS)
def test_openssl_encrypts_drdrill_decrypts(tmp_path, kdf, openssl_args, size):
    data = plaintext(size)
    (tmp_path / "plain").write_bytes(data)
    openssl_enc(["-salt", *openssl_args, "-in", str(tmp_path / "plain"), "-out", str(tmp_path / "enc")])

    written = decrypt_file(tmp_path / "enc", tmp_path / "dec", PASSWORD, kdf)
    assert written == size
    assert (tmp_path / "dec").read_bytes() == data


@needs_openssl
@pytest.mark.parametrize(("kdf", "openssl_args"), KDFS)
def test_known_answer_fixed_salt_matches_openssl_bytes(tmp_path, kdf, openssl_args):
    data = plaintext(1000)
    (tmp_path / "plain").write_bytes(data)
    openssl_enc(
        [*openssl_args, "-S", SALT.hex(), "-in", str(tmp_path / "plain"), "-out", str(tmp_path / "ref")]
    )

    # OpenSSL 3 leaves out the "Salted__" + salt header when the salt is given with -S.
    expected = b"Salted__" + SALT + (tmp_path / "ref").read_bytes()
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, PASSWORD, kdf, salt=SALT)
    assert out.getvalue() == expected

    encrypt_file(tmp_path / "plain", tmp_path / "mine", PASSWORD, kdf, salt=SALT)
    assert (tmp_path / "mine").read_bytes() == expected


@needs_openssl
@pytest.mark.parametrize(("kdf", "openssl_args"), KDFS)
def test_derive_key_iv_and_openssl_args_match_openssl(kdf, openssl_args):
    key, iv = derive_key_iv(PASSWORD, SALT, kdf)
    assert (key.hex().upper(), iv.hex().upper()) == openssl_key_iv(openssl_args, SALT)


@needs_openssl
def test_runbook_command_with_literal_k(tmp_path):
    """The runbook's exact commands, password given with -k (a throw-away test value)."""
    literal = "runbook-throwaway-pw"
    data = plaintext(5000)
    (tmp_path / "F.sql").write_bytes(data)
    encrypt_file(tmp_path / "F.sql", tmp_path / "F.sql.enc", literal.encode())
    subprocess.run(
        [
            "openssl",
            "enc",
            "-d",
            "-aes-256-cbc",
            "-salt",
            "-in",
            "F.sql.enc",
            "-out",
            "F2.sql",
            "-k",
            literal,
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    assert (tmp_path / "F2.sql").read_bytes() == data

    subprocess.run(
        ["openssl", "enc", "-aes-256-cbc", "-salt", "-in", "F.sql", "-out", "G.sql.enc", "-k", literal],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    decrypt_file(tmp_path / "G.sql.enc", tmp_path / "G.sql", literal.encode(), RUNBOOK_DEFAULT)
    assert (tmp_path / "G.sql").read_bytes() == data


@needs_openssl
def test_password_file_reads_like_openssl_pass_file(tmp_path):
    pw_file = tmp_path / "pw"
    pw_file.write_bytes(PASSWORD + b"\n")
    password = read_password(None, pw_file)
    assert password == PASSWORD
    key, iv = derive_key_iv(password, SALT)
    assert (key.hex().upper(), iv.hex().upper()) == openssl_key_iv([], SALT, ["-pass", f"file:{pw_file}"])


# --- streaming ------------------------------------------------------------------------------


class ShortReads(io.RawIOBase):
    """A reader that returns at most 7 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._buf = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._buf.read(min(7, size) if size and size > 0 else 7)


def test_round_trip_through_short_reads_and_sizes_returned():
    data = plaintext(3 * CHUNK_SIZE + 5)
    enc = io.BytesIO()
    n_enc = encrypt_stream(ShortReads(data), enc, PASSWORD, salt=SALT)
    assert n_enc == len(enc.getvalue())
    dec = io.BytesIO()
    n_dec = decrypt_stream(ShortReads(enc.getvalue()), dec, PASSWORD)
    assert n_dec == len(data)
    assert dec.getvalue() == data


def test_random_salt_differs_between_runs():
    a, b = io.BytesIO(), io.BytesIO()
    encrypt_stream(io.BytesIO(b"same"), a, PASSWORD)
    encrypt_stream(io.BytesIO(b"same"), b, PASSWORD)
    assert a.getvalue()[8:16] != b.getvalue()[8:16]
    assert a.getvalue() != b.getvalue()


def test_bad_salt_and_password_arguments():
    with pytest.raises(UsageError, match="salt must be 8 bytes"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), PASSWORD, salt=b"short")
    with pytest.raises(UsageError, match="password is empty"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), b"")
    with pytest.raises(UsageError, match="must be bytes"):
        encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), "text")  # type: ignore[arg-type]


# --- failures: clear errors, no partial output, nothing clobbered ---------------------------


@pytest.fixture
def encrypted(tmp_path) -> Path:
    """100 bytes of b'x' (so a block-aligned cut leaves invalid padding), fixed salt."""
    (tmp_path / "plain").write_bytes(b"x" * 100)
    encrypt_file(tmp_path / "plain", tmp_path / "enc", PASSWORD, salt=SALT)
    return tmp_path / "enc"


def assert_decrypt_fails(src: Path, match: str, password: bytes = PASSWORD, kdf: KdfSpec = RUNBOOK_DEFAULT):
    before = dir_listing(src.parent)
    with pytest.raises(DecryptionError, match=match) as info:
        decrypt_file(src, src.parent / "out", password, kdf)
    assert dir_listing(src.parent) == before, "no output and no temp file may be left"
    assert "\n" not in info.value.one_line()
    return info.value


def test_wrong_password_fails_without_output(encrypted):
    # Deterministic: fixed salt and password, and this pair does fail the padding check (a
    # wrong key passes it by chance ~1/256 of the time; see decrypt_stream).
    err = assert_decrypt_fails(encrypted, "wrong password", password=b"not the password")
    assert err.hint is not None and "--md/--pbkdf2" in err.hint
    assert "not the password" not in err.one_line()


@pytest.mark.parametrize(
    "kdf", [KdfSpec(md="md5"), KdfSpec(pbkdf2=True), KdfSpec(pbkdf2=True, iterations=9999)], ids=str
)
def test_wrong_key_derivation_fails(encrypted, kdf):
    err = assert_decrypt_fails(encrypted, "bad padding", kdf=kdf)
    assert kdf.describe() in err.message


def test_truncated_mid_block(encrypted):
    encrypted.write_bytes(encrypted.read_bytes()[:-5])
    assert_decrypt_fails(encrypted, "truncated")


def test_truncated_at_block_boundary(encrypted):
    data = encrypted.read_bytes()
    assert (len(data) - 16) % 16 == 0
    encrypted.write_bytes(data[:-16])
    # The new last block decrypts to b"x"*16 – not valid PKCS#7 padding.
    assert_decrypt_fails(encrypted, "bad padding")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "input is empty"),
        (b"-- PostgreSQL database dump\nCREATE TABLE t ();\n" * 4, "not an openssl enc file"),
        (b"Salted_X" + bytes(24), "not an openssl enc file"),
        (b"Salted", "truncated"),
        (b"Salted__\x01\x02\x03", "truncated"),
        (b"Salted__" + SALT, "truncated"),  # header only, no ciphertext
    ],
    ids=["empty", "plain-sql", "bad-magic", "partial-magic", "partial-salt", "header-only"],
)
def test_not_openssl_or_truncated_header(tmp_path, content, match):
    (tmp_path / "enc").write_bytes(content)
    assert_decrypt_fails(tmp_path / "enc", match)


def test_failed_decrypt_does_not_clobber_existing_destination(encrypted):
    dst = encrypted.parent / "out"
    dst.write_bytes(b"precious")
    with pytest.raises(DecryptionError):
        decrypt_file(encrypted, dst, b"not the password")
    assert dst.read_bytes() == b"precious"
    assert not [p for p in encrypted.parent.iterdir() if p.name.endswith(".tmp")]


def test_successful_decrypt_replaces_destination_private_mode(encrypted):
    dst = encrypted.parent / "out"
    dst.write_bytes(b"old")
    assert decrypt_file(encrypted, dst, PASSWORD) == 100
    assert dst.read_bytes() == b"x" * 100
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600


def test_failure_while_renaming_removes_temp(tmp_path, monkeypatch):
    (tmp_path / "plain").write_bytes(b"data")
    (tmp_path / "enc").write_bytes(b"existing")

    def boom(*_args):
        raise OSError("simulated rename failure")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="simulated"):
        encrypt_file(tmp_path / "plain", tmp_path / "enc", PASSWORD)
    assert dir_listing(tmp_path) == {"plain", "enc"}
    assert (tmp_path / "enc").read_bytes() == b"existing"


def test_missing_input_and_output_dir_are_usage_errors(tmp_path):
    missing = tmp_path / "nope.sql"
    for func in (encrypt_file, decrypt_file):
        with pytest.raises(UsageError, match="input file not found") as info:
            func(missing, tmp_path / "out", PASSWORD)
        assert str(missing) in info.value.message
    assert dir_listing(tmp_path) == set()

    (tmp_path / "plain").write_bytes(b"x")
    with pytest.raises(UsageError, match="output directory does not exist"):
        encrypt_file(tmp_path / "plain", tmp_path / "no" / "dir" / "out", PASSWORD)
    with pytest.raises(UsageError, match="input is a directory"):
        encrypt_file(tmp_path, tmp_path / "out", PASSWORD)


# --- checksums ------------------------------------------------------------------------------


def test_hashing_writer_checksums_ciphertext_in_the_same_pass():
    sink = io.BytesIO()
    writer = HashingWriter(sink)
    n = encrypt_stream(io.BytesIO(plaintext(70_000)), writer, PASSWORD)  # type: ignore[arg-type]
    assert writer.bytes_written == n == len(sink.getvalue())
    assert writer.hexdigest() == hashlib.sha256(sink.getvalue()).hexdigest()


# --- KdfSpec --------------------------------------------------------------------------------


def test_kdfspec_weakness_and_description():
    assert KdfSpec(md="sha256", pbkdf2=False) == RUNBOOK_DEFAULT
    assert RUNBOOK_DEFAULT.is_weak and KdfSpec(md="md5").is_weak
    assert not KdfSpec(pbkdf2=True).is_weak
    assert RUNBOOK_DEFAULT.describe() == "EVP_BytesToKey(sha256, 1 iteration)"
    assert KdfSpec(md="md5").describe() == "EVP_BytesToKey(md5, 1 iteration)"
    assert KdfSpec(pbkdf2=True).describe() == "PBKDF2-HMAC-SHA256 (10000 iterations)"
    assert KdfSpec(md="md5", pbkdf2=True, iterations=1).describe() == "PBKDF2-HMAC-MD5 (1 iteration)"


def test_kdfspec_validation_and_options():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RUNBOOK_DEFAULT.md = "md5"  # type: ignore[misc]
    with pytest.raises(UsageError, match="unsupported digest"):
        KdfSpec(md="sha1")  # type: ignore[arg-type]
    for bad in (0, -5, True, "10"):
        with pytest.raises(UsageError, match="iteration count"):
            KdfSpec(pbkdf2=True, iterations=bad)  # type: ignore[arg-type]
    # Like `openssl enc`, -iter implies -pbkdf2.
    assert KdfSpec.from_options(iterations=1000) == KdfSpec(pbkdf2=True, iterations=1000)
    assert KdfSpec.from_options("md5") == KdfSpec(md="md5")
    assert KdfSpec.from_options(pbkdf2=True) == KdfSpec(pbkdf2=True, iterations=10000)  # openssl's -pbkdf2


# --- password sources -----------------------------------------------------------------------


def test_password_from_env(monkeypatch):
    monkeypatch.setenv(PW_ENV, os.fsdecode(PASSWORD))
    assert read_password(PW_ENV, None) == PASSWORD


def test_password_env_missing_or_empty(monkeypatch):
    monkeypatch.delenv(PW_ENV, raising=False)
    with pytest.raises(PasswordSourceError, match=f"{PW_ENV} is not set"):
        read_password(PW_ENV, None)
    monkeypatch.setenv(PW_ENV, "")
    with pytest.raises(PasswordSourceError, match=f"{PW_ENV} is empty"):
        read_password(PW_ENV, None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"s3cret\n", b"s3cret"),
        (b"s3cret\r\n", b"s3cret"),
        (b"s3cret", b"s3cret"),
        (b" s3 cret \n", b" s3 cret "),
    ],
    ids=["lf", "crlf", "no-newline", "spaces-kept"],
)
def test_password_file_strips_one_trailing_newline(tmp_path, content, expected):
    (tmp_path / "pw").write_bytes(content)
    assert read_password(None, tmp_path / "pw") == expected


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"\n", "empty"),
        (b"s3cret\nother\n", "more than one line"),
        (b"s3cret\n\n", "more than one"),
    ],
    ids=["empty", "only-newline", "two-lines", "two-newlines"],
)
def test_password_file_bad_content(tmp_path, content, match):
    path = tmp_path / "pw"
    path.write_bytes(content)
    with pytest.raises(PasswordSourceError, match=match) as info:
        read_password(None, path)
    assert str(path) in info.value.message
    assert "s3cret" not in info.value.one_line()


def test_password_file_missing_or_directory(tmp_path):
    with pytest.raises(PasswordSourceError, match="password file not found") as info:
        read_password(None, tmp_path / "missing")
    assert str(tmp_path / "missing") in info.value.message
    with pytest.raises(PasswordSourceError, match="is a directory"):
        read_password(None, tmp_path)


def test_password_needs_exactly_one_source(tmp_path, monkeypatch):
    monkeypatch.setenv(PW_ENV, "x")
    (tmp_path / "pw").write_bytes(b"x")
    for args in ((None, None), (PW_ENV, tmp_path / "pw")):
        with pytest.raises(UsageError, match="exactly one password source") as info:
            read_password(*args)
        assert not isinstance(info.value, PasswordSourceError)


# --- large file: memory stays flat ----------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from drdrill.adapters.crypto import decrypt_file, encrypt_file, read_password
    func = {"encrypt": encrypt_file, "decrypt": decrypt_file}[sys.argv[1]]
    func(sys.argv[2], sys.argv[3], read_password(sys.argv[4], None))
    # VmHWM is this process image's own peak RSS. getrusage's ru_maxrss is not: Linux carries
    # the parent's peak across fork+exec, so a big test runner would inflate it.
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
    print(hwm.split()[1])  # KiB
    """
)


def _child_peak_rss_mib(op: str, src: Path, dst: Path) -> float:
    env = {**os.environ, PW_ENV: os.fsdecode(PASSWORD)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, op, str(src), str(dst), PW_ENV],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.strip()) / 1024


@pytest.mark.slow
@needs_openssl
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_large_file_streams_in_constant_memory(tmp_path):
    size_mib = 300
    plain = tmp_path / "big.sql"
    digest = hashlib.sha256()
    with plain.open("wb") as f:
        for _ in range(size_mib):
            block = os.urandom(CHUNK_SIZE)
            digest.update(block)
            f.write(block)
    expected = digest.hexdigest()

    (tmp_path / "tiny").write_bytes(b"x")
    baseline = _child_peak_rss_mib("encrypt", tmp_path / "tiny", tmp_path / "tiny.enc")

    enc_peak = _child_peak_rss_mib("encrypt", plain, tmp_path / "big.sql.enc")
    plain.unlink()
    assert enc_peak < 150, f"encrypt peak RSS {enc_peak:.0f} MiB for a {size_mib} MiB file"
    assert enc_peak - baseline < 48, f"encrypt grew {enc_peak - baseline:.0f} MiB over baseline"

    openssl_enc(["-d", "-salt", "-in", str(tmp_path / "big.sql.enc"), "-out", str(tmp_path / "ossl.sql")])
    assert _sha256(tmp_path / "ossl.sql") == expected
    (tmp_path / "ossl.sql").unlink()

    dec_peak = _child_peak_rss_mib("decrypt", tmp_path / "big.sql.enc", tmp_path / "back.sql")
    assert dec_peak < 150, f"decrypt peak RSS {dec_peak:.0f} MiB for a {size_mib} MiB file"
    assert dec_peak - baseline < 48, f"decrypt grew {dec_peak - baseline:.0f} MiB over baseline"
    assert _sha256(tmp_path / "back.sql") == expected


def _sha256(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
