"""The runbook's encryption format: ``openssl enc -aes-256-cbc -salt``, streamed.

A file is ``b"Salted__" + salt (8 bytes) + AES-256-CBC ciphertext`` (PKCS#7 padded). The key
and IV come from the password and the salt by one of the key derivations ``openssl enc`` offers
(:class:`KdfSpec`):

* ``EVP_BytesToKey`` with one iteration of SHA-256 – the OpenSSL >= 1.1 default and what the
  runbook's ``openssl enc -aes-256-cbc -salt -k "$DB_PASSWORD"`` uses;
* ``EVP_BytesToKey`` with MD5 – ``-md md5``, the OpenSSL 1.0 default;
* PBKDF2-HMAC (``-pbkdf2 [-iter N] [-md sha256|md5]``), 32 bytes of key then 16 bytes of IV.

The format has no MAC and no password check: a wrong password is noticed only because the
padding at the end does not decrypt to valid PKCS#7, and about 1 time in 256 it does by chance
(see :func:`decrypt_stream`). Integrity is the job of the SHA-256 checksum record kept beside
each object, checked before decrypting.

Everything streams in :data:`CHUNK_SIZE` pieces, so memory stays flat whatever the file size.
The file helpers write to a temporary file next to the destination and rename it into place
only on success, so a failure never leaves partial output and never clobbers an existing file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from drdrill.core.kdf import RECOMMENDED, RECOMMENDED_PBKDF2_ITERATIONS, RUNBOOK_DEFAULT, Digest, KdfSpec
from drdrill.errors import DecryptionError, PasswordSourceError, UsageError

# The key derivation is described in the pure core (settings read it); the crypto is here.
__all__ = ["RECOMMENDED", "RECOMMENDED_PBKDF2_ITERATIONS", "RUNBOOK_DEFAULT", "Digest", "KdfSpec"]

MAGIC = b"Salted__"
SALT_SIZE = 8
BLOCK_SIZE = 16  # AES block size in bytes
KEY_SIZE = 32  # AES-256
IV_SIZE = 16
HEADER_SIZE = len(MAGIC) + SALT_SIZE
CHUNK_SIZE = 1024 * 1024

PathLike = str | os.PathLike[str]

_DECRYPT_HINT = "check the password source and --md/--pbkdf2 settings"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "md5": hashes.MD5}


def derive_key_iv(password: bytes, salt: bytes, kdf: KdfSpec = RUNBOOK_DEFAULT) -> tuple[bytes, bytes]:
    """Key (32 bytes) and IV (16 bytes) exactly as ``openssl enc -aes-256-cbc`` derives them."""
    _check_password(password)
    if len(salt) != SALT_SIZE:
        raise UsageError(f"salt must be {SALT_SIZE} bytes, got {len(salt)}")
    if kdf.pbkdf2:
        pbkdf = PBKDF2HMAC(
            algorithm=_HASHES[kdf.md](), length=KEY_SIZE + IV_SIZE, salt=salt, iterations=kdf.iterations
        )
        material = pbkdf.derive(password)
    else:
        # EVP_BytesToKey(count=1): D_1 = H(pw || salt), D_i = H(D_{i-1} || pw || salt), concatenated.
        material = b""
        block = b""
        while len(material) < KEY_SIZE + IV_SIZE:
            block = hashlib.new(kdf.md, block + password + salt).digest()
            material += block
    return material[:KEY_SIZE], material[KEY_SIZE : KEY_SIZE + IV_SIZE]


def _check_password(password: bytes) -> None:
    if not isinstance(password, bytes | bytearray):
        raise UsageError("password must be bytes")
    if not password:
        raise UsageError("password is empty")


def _read_exact(src: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, fewer only at end of stream (tolerates short reads from pipes)."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        data = src.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)


class Writer(Protocol):
    """Anything encrypted output can go to: a file, a pipe, a :class:`HashingWriter`."""

    def write(self, data: bytes, /) -> int: ...


def encrypt_stream(
    src: BinaryIO,
    dst: Writer,
    password: bytes,
    kdf: KdfSpec = RUNBOOK_DEFAULT,
    salt: bytes | None = None,
) -> int:
    """Encrypt ``src`` to ``dst`` in the ``openssl enc -aes-256-cbc -salt`` format.

    ``salt`` defaults to 8 random bytes; pass one only for reproducible output (tests).
    Returns the number of bytes written to ``dst`` (header included).
    """
    if salt is None:
        salt = os.urandom(SALT_SIZE)
    key, iv = derive_key_iv(password, salt, kdf)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    padder = padding.PKCS7(BLOCK_SIZE * 8).padder()
    dst.write(MAGIC + salt)
    written = HEADER_SIZE
    while chunk := src.read(CHUNK_SIZE):
        out = encryptor.update(padder.update(chunk))
        dst.write(out)
        written += len(out)
    out = encryptor.update(padder.finalize()) + encryptor.finalize()
    dst.write(out)
    return written + len(out)


def decrypt_stream(src: BinaryIO, dst: Writer, password: bytes, kdf: KdfSpec = RUNBOOK_DEFAULT) -> int:
    """Decrypt an ``openssl enc -aes-256-cbc -salt`` stream from ``src`` to ``dst``.

    Returns the number of plaintext bytes written. Raises :class:`DecryptionError` when the
    input is not in this format, is truncated, or its final padding is invalid (wrong password,
    wrong ``--md``/``--pbkdf2`` settings, or corrupt data). Problems are only known at the end
    of the stream, by which time ``dst`` has received most of the plaintext: callers that must
    not leave partial output use :func:`decrypt_file`, which cleans up.

    There is no password check in the format: a wrong key yields random-looking plaintext whose
    last block happens to end in valid PKCS#7 padding (most likely a single 0x01 byte) about
    once in 256 tries. Then decryption "succeeds" with garbage; that is inherent to ``openssl
    enc`` and why objects are checksummed and restored data is verified.
    """
    header = _read_exact(src, HEADER_SIZE)
    if not header or not header.startswith(MAGIC[: len(header)]):
        raise DecryptionError(
            "not an openssl enc file (no 'Salted__' header)"
            if header
            else "not an openssl enc file (input is empty)",
            hint="expected the output of 'openssl enc -aes-256-cbc -salt'",
        )
    if len(header) < HEADER_SIZE:
        raise DecryptionError(
            f"truncated openssl enc file: header is {len(header)} of {HEADER_SIZE} bytes",
            hint="the file was cut short; fetch it again and check its SHA-256",
        )
    key, iv = derive_key_iv(password, header[len(MAGIC) :], kdf)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(BLOCK_SIZE * 8).unpadder()
    ciphertext_len = 0
    written = 0
    while chunk := src.read(CHUNK_SIZE):
        ciphertext_len += len(chunk)
        out = unpadder.update(decryptor.update(chunk))
        dst.write(out)
        written += len(out)
    if ciphertext_len == 0 or ciphertext_len % BLOCK_SIZE:
        raise DecryptionError(
            f"truncated openssl enc file: {ciphertext_len} bytes of ciphertext, "
            f"expected a non-zero multiple of {BLOCK_SIZE}",
            hint="the file was cut short; fetch it again and check its SHA-256",
        )
    try:
        out = unpadder.update(decryptor.finalize()) + unpadder.finalize()
    except ValueError:
        raise DecryptionError(
            f"decryption failed ({kdf.describe()}): bad padding - wrong password, "
            "wrong key derivation, or corrupt or truncated data",
            hint=_DECRYPT_HINT,
        ) from None
    dst.write(out)
    return written + len(out)


def decrypt_head(data: bytes, password: bytes, kdf: KdfSpec = RUNBOOK_DEFAULT, blocks: int = 4) -> bytes:
    """The first ``blocks`` plaintext blocks of an ``openssl enc`` object, without the padding
    check (which needs the end): what a password turns the start of a dump into."""
    if not data.startswith(MAGIC) or len(data) < HEADER_SIZE + BLOCK_SIZE:
        raise DecryptionError("not an openssl enc file (no 'Salted__' header)")
    key, iv = derive_key_iv(password, data[len(MAGIC):HEADER_SIZE], kdf)
    body = data[HEADER_SIZE:HEADER_SIZE + blocks * BLOCK_SIZE]
    body = body[: len(body) // BLOCK_SIZE * BLOCK_SIZE]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(body) + decryptor.finalize()


# --- files, written atomically --------------------------------------------------------------


@contextmanager
def _open_input(path: PathLike) -> Iterator[BinaryIO]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, errors translated first
    except FileNotFoundError:
        raise UsageError(f"input file not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise UsageError(f"input is a directory, not a file: {os.fspath(path)}") from None
    except OSError as exc:
        raise UsageError(f"cannot read input file {os.fspath(path)}: {exc.strerror}") from None
    with f:
        yield f


@contextmanager
def _atomic_output(path: PathLike) -> Iterator[BinaryIO]:
    """A temp file beside ``path``, fsynced and renamed over it only if the block succeeds.

    The file is created mode 0600 (``mkstemp``), which suits decrypted dumps.
    """
    dst = Path(path)
    directory = dst.parent
    if not directory.is_dir():
        raise UsageError(f"output directory does not exist: {os.fspath(directory)}")
    if dst.is_dir():
        raise UsageError(f"output is a directory, not a file: {os.fspath(dst)}")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{dst.name}.", suffix=".tmp")
    except OSError as exc:
        raise UsageError(f"cannot write to output directory {os.fspath(directory)}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, dst)
    except BaseException:
        # Covers exceptions from the block and KeyboardInterrupt alike; the destination is
        # untouched because nothing but os.replace ever writes to it.
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; best effort (not every platform/filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def encrypt_file(
    src_path: PathLike,
    dst_path: PathLike,
    password: bytes,
    kdf: KdfSpec = RUNBOOK_DEFAULT,
    *,
    salt: bytes | None = None,
) -> int:
    """Encrypt ``src_path`` into ``dst_path`` atomically; returns bytes written."""
    _check_password(password)
    with _open_input(src_path) as src, _atomic_output(dst_path) as dst:
        return encrypt_stream(src, dst, password, kdf, salt)


def decrypt_file(
    src_path: PathLike, dst_path: PathLike, password: bytes, kdf: KdfSpec = RUNBOOK_DEFAULT
) -> int:
    """Decrypt ``src_path`` into ``dst_path`` atomically; on any failure no output is left
    and an existing ``dst_path`` is unchanged. Returns plaintext bytes written."""
    _check_password(password)
    with _open_input(src_path) as src, _atomic_output(dst_path) as dst:
        return decrypt_stream(src, dst, password, kdf)


# --- checksums ------------------------------------------------------------------------------


class HashingWriter:
    """Wraps a binary writer, hashing (SHA-256) and counting everything written through it.

    E.g. ``encrypt_stream(src, HashingWriter(dst), pw)`` yields the ciphertext checksum record
    in the same pass as encryption.
    """

    def __init__(self, dst: BinaryIO | None = None) -> None:
        self._dst = dst
        self._hash = hashlib.sha256()
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.bytes_written += len(data)
        if self._dst is not None:
            self._dst.write(data)
        return len(data)

    def flush(self) -> None:
        if self._dst is not None:
            self._dst.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


# --- password sources -----------------------------------------------------------------------


def read_password(env_var: str | None, file_path: PathLike | None) -> bytes:
    """The password from exactly one source: an environment variable or a file.

    From a file, a single trailing ``\\n`` or ``\\r\\n`` is removed. A file with more lines
    is refused: ``openssl -pass file:`` would silently use only the first line, so accepting
    it either way would make drdrill and openssl disagree about the password. Messages name
    the source, never the value.
    """
    if (env_var is None) == (file_path is None):
        raise UsageError(
            "give exactly one password source",
            hint="use --password-env VAR or --password-file FILE (passwords are never taken from argv)",
        )
    if env_var is not None:
        if not env_var:
            raise UsageError("password environment variable name is empty")
        text = os.environ.get(env_var)
        if text is None:
            raise PasswordSourceError(
                f"password environment variable {env_var} is not set", hint=f"export {env_var}=..."
            )
        if not text:
            raise PasswordSourceError(f"password environment variable {env_var} is empty")
        return os.fsencode(text)  # the raw bytes of the environment, as openssl sees them

    assert file_path is not None
    name = os.fspath(file_path)
    try:
        with open(file_path, "rb") as f:
            content = f.read(64 * 1024 + 1)
    except FileNotFoundError:
        raise PasswordSourceError(f"password file not found: {name}") from None
    except IsADirectoryError:
        raise PasswordSourceError(f"password file is a directory: {name}") from None
    except OSError as exc:
        raise PasswordSourceError(f"cannot read password file {name}: {exc.strerror}") from None
    if len(content) > 64 * 1024:
        raise PasswordSourceError(f"password file is implausibly large (> 64 KiB): {name}")
    if content.endswith(b"\r\n"):
        content = content[:-2]
    elif content.endswith(b"\n"):
        content = content[:-1]
    if not content:
        raise PasswordSourceError(f"password file is empty: {name}")
    if b"\n" in content:
        raise PasswordSourceError(
            f"password file has more than one line: {name}",
            hint="put only the password in the file (openssl -pass file: reads just the first line)",
        )
    return content
