"""How ``openssl enc`` turns a password and salt into key and IV, as settings describe it (pure:
the crypto itself is :mod:`drdrill.adapters.crypto`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from drdrill.errors import UsageError

Digest = Literal["sha256", "md5"]
DIGESTS = ("sha256", "md5")


@dataclass(frozen=True)
class KdfSpec:
    """How ``openssl enc`` turns password + salt into key + IV.

    ``md`` is ``-md``; ``pbkdf2`` is ``-pbkdf2``; ``iterations`` is ``-iter`` and only counts
    with PBKDF2 (``EVP_BytesToKey`` as used by ``openssl enc`` always does one iteration).
    """

    md: Digest = "sha256"
    pbkdf2: bool = False
    iterations: int = 10000

    def __post_init__(self) -> None:
        if self.md not in DIGESTS:
            raise UsageError(f"unsupported digest {self.md!r}", hint="use sha256 or md5")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise UsageError(f"iteration count must be a positive integer, got {self.iterations!r}")

    @classmethod
    def from_options(cls, md: str = "sha256", pbkdf2: bool = False, iterations: int | None = None) -> KdfSpec:
        """Build from command-line style options; like ``openssl enc``, ``-iter`` implies PBKDF2."""
        if iterations is not None:
            return cls(md=cast(Digest, md), pbkdf2=True, iterations=iterations)  # checked in __post_init__
        return cls(md=cast(Digest, md), pbkdf2=pbkdf2)

    @property
    def is_weak(self) -> bool:
        """True for ``EVP_BytesToKey``: one hash iteration makes password guessing cheap
        (with MD5 even cheaper). Kept for compatibility with the runbook, not recommended."""
        return not self.pbkdf2

    def describe(self) -> str:
        if self.pbkdf2:
            unit = "iteration" if self.iterations == 1 else "iterations"
            return f"PBKDF2-HMAC-{self.md.upper()} ({self.iterations} {unit})"
        return f"EVP_BytesToKey({self.md}, 1 iteration)"


RUNBOOK_DEFAULT = KdfSpec()
# What drdrill's own backups use with --pbkdf2 and what the report recommends (OWASP's figure
# for PBKDF2-HMAC-SHA256); ``openssl enc -pbkdf2`` alone means 10000, which drdrill's
# encrypt/decrypt keep for compatibility.
RECOMMENDED_PBKDF2_ITERATIONS = 600_000
RECOMMENDED = KdfSpec(pbkdf2=True, iterations=RECOMMENDED_PBKDF2_ITERATIONS)


