"""Ed25519 keys for signing evidence: PEM PKCS#8 private keys and SubjectPublicKeyInfo public
keys, the formats `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write. A
private key comes from a file or an environment variable, never from the command line."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from drdrill.errors import PasswordSourceError, UsageError


def fingerprint(public: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: what reports and packs name a key by."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key.public_key())

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.key.sign(data)).decode()

    def sign_text(self, text: str) -> tuple[str, str]:
        """(signature, key fingerprint) of ``text`` (e.g. a history line's hash)."""
        return self.sign(text.encode()), self.fingerprint


def holds(public: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), data)
        return True
    except (InvalidSignature, ValueError):
        return False


def load_private(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{source} is not an unencrypted PEM private key: {exc}",
                         hint="`drdrill evidence keygen` or `openssl genpkey -algorithm ed25519` makes one") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{source} is a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public(pem: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{source} is not a PEM public key: {exc}",
                         hint="the KEY.pub `drdrill evidence keygen` wrote, or `openssl pkey -pubout`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{source} is a {type(key).__name__}, not an Ed25519 public key")
    return key


def read_signer(key_file: str | Path | None = None, key_env: str | None = None) -> Signer | None:
    """The signing key from a file or an environment variable holding the PEM (None: neither)."""
    if key_file and key_env:
        raise UsageError("give the evidence key as a file or an environment variable, not both")
    if key_file:
        try:
            return Signer(load_private(Path(key_file).read_bytes(), f"key file {key_file}"))
        except OSError as exc:
            raise PasswordSourceError(f"cannot read key file {key_file}: {exc.strerror or exc}") from None
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise PasswordSourceError(f"environment variable {key_env} (the evidence key) is not set or empty",
                                      hint=f"export {key_env}=\"$(cat evidence.key)\"")
        return Signer(load_private(value.encode(), f"environment variable {key_env}"))
    return None


def read_public(path: str | Path) -> Ed25519PublicKey:
    try:
        return load_public(Path(path).read_bytes(), f"public key {path}")
    except OSError as exc:
        raise UsageError(f"cannot read public key {path}: {exc.strerror or exc}") from None


def generate(out: Path) -> tuple[Path, Path]:
    """Write a new key (mode 0600) and its public half beside it (``<out>.pub``); never over an
    existing file."""
    public_path = out.with_name(out.name + ".pub")
    for path in (out, public_path):
        if path.exists():
            raise UsageError(f"{path} exists", hint="keys are never overwritten; choose another name")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_pem)
    return out, public_path
