"""The drill history: one JSON line per drill, chained by hashes so edits show, and signed.

A line (format 2) carries the drill's id, time, verdict, a summary for trends (target, RTO,
RPO, exposure, tenants, data size), the SHA-256 of **every** file of its report directory,
where that directory is, the previous report's SHA-256, and ``line_sha256``: the hash of all
of that together with the previous line's ``line_sha256``. Editing, removing or reordering a
line breaks the hash of that line or of the next one; editing any report file breaks its
recorded SHA-256. With an evidence key, each line also carries an Ed25519 signature of its
``line_sha256`` and the key's fingerprint: whoever rewrites the whole chain must also hold the
key. Lines written before format 2 (no ``v``) are read and verified as they were written.

Everything here works on strings, bytes and callables; files and keys are the callers'.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

FORMAT = 2
_V1_HASHED = ("drill_id", "finished_at", "verdict", "report_sha256", "previous_report_sha256")
_V2_HASHED = (*_V1_HASHED, "v", "report_dir", "files", "summary")
# Not hashed: the signature covers line_sha256, and the fingerprint says which key made it.
_UNHASHED = ("line_sha256", "signature", "key_fingerprint")

# (line_sha256, signature, key fingerprint) -> problem text or None
SignatureCheck = Callable[[str, str, str], str | None]


class HistoryFormatError(ValueError):
    """A history line is not a JSON object with the expected fields."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class HistoryEntry:
    drill_id: str
    finished_at: str | None  # ISO-8601 UTC as in report.json
    verdict: str
    report_sha256: str
    previous_report_sha256: str | None
    line_sha256: str
    v: int = 1
    report_dir: str | None = None  # relative to the history file's directory where possible
    files: dict[str, str] = field(default_factory=dict)  # report file -> SHA-256
    summary: dict[str, Any] = field(default_factory=dict)
    signature: str | None = None
    key_fingerprint: str | None = None

    def hashed_fields(self) -> dict[str, Any]:
        names = _V2_HASHED if self.v >= 2 else _V1_HASHED
        return {name: getattr(self, name) for name in names}

    def to_line(self) -> str:
        """The line without its newline; compact so that one drill is one line."""
        data = asdict(self)
        if self.v < 2:
            data = {k: data[k] for k in (*_V1_HASHED, "line_sha256")}
        return _canonical({k: v for k, v in data.items() if v is not None or k in _V1_HASHED}).decode("utf-8")

    @classmethod
    def from_line(cls, line: str) -> HistoryEntry:
        try:
            data = json.loads(line)
            required = {name: data[name] for name in (*_V1_HASHED, "line_sha256")}
            optional = ("v", "report_dir", "files", "summary", "signature", "key_fingerprint")
            return cls(**required, **{name: data[name] for name in optional if name in data})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise HistoryFormatError(f"not a history entry: {exc}") from exc


def line_hash(fields: Mapping[str, Any], previous_line_sha256: str | None) -> str:
    """SHA-256 over the hashed fields and the previous line's hash."""
    payload = dict(fields)
    payload["previous_line_sha256"] = previous_line_sha256
    return sha256_hex(_canonical(payload))


def _entries(lines: Iterable[str]) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-blank lines."""
    return [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]


def entries(lines: Iterable[str]) -> list[HistoryEntry]:
    return [HistoryEntry.from_line(text) for _n, text in _entries(lines)]


def last_entry(lines: Iterable[str]) -> HistoryEntry | None:
    found = _entries(lines)
    return HistoryEntry.from_line(found[-1][1]) if found else None


def last_report_sha256(lines: Iterable[str]) -> str | None:
    """The ``report_sha256`` of the newest drill: the next report's ``previous_report_sha256``."""
    last = last_entry(lines)
    return None if last is None else last.report_sha256


def make_entry(*, drill_id: str, finished_at: str | None, verdict: str, report_bytes: bytes,
               previous_line: str | None, files: Mapping[str, str] | None = None, report_dir: str | None = None,
               summary: Mapping[str, Any] | None = None,
               sign: Callable[[str], tuple[str, str]] | None = None) -> HistoryEntry:
    """The history entry of a report, chained to ``previous_line`` (None for the first drill);
    ``sign`` (line_sha256 -> (signature, key fingerprint)) signs it."""
    previous = HistoryEntry.from_line(previous_line) if previous_line and previous_line.strip() else None
    unsigned = HistoryEntry(
        drill_id=drill_id, finished_at=finished_at, verdict=verdict, report_sha256=sha256_hex(report_bytes),
        previous_report_sha256=previous.report_sha256 if previous else None, line_sha256="", v=FORMAT,
        report_dir=report_dir, files=dict(files or {}), summary=dict(summary or {}))
    digest = line_hash(unsigned.hashed_fields(), previous.line_sha256 if previous else None)
    signature, fingerprint = sign(digest) if sign is not None else (None, None)
    return HistoryEntry(**{**asdict(unsigned), "line_sha256": digest, "signature": signature,
                           "key_fingerprint": fingerprint})


def make_line(**kwargs: Any) -> str:
    return make_entry(**kwargs).to_line()


def verify_chain(lines: Iterable[str], report_bytes_by_id: Mapping[str, bytes] | None = None, *,
                 check_signature: SignatureCheck | None = None, require_signatures: bool = False) -> list[str]:
    """Problems found in the chain (empty when intact), one line each.

    With ``report_bytes_by_id`` (drill_id → the report.json bytes), also checks that each
    supplied report is byte-for-byte the one the history recorded. With ``check_signature``,
    every signed line's signature is checked; ``require_signatures``: an unsigned line after the
    first signed one is a problem (unsigned lines before it are from before signing began).
    """
    problems: list[str] = []
    signing_began = False
    previous: HistoryEntry | None = None
    for number, text in _entries(lines):
        try:
            entry = HistoryEntry.from_line(text)
        except HistoryFormatError as exc:
            problems.append(f"line {number}: {exc}")
            previous = None  # nothing to chain against; the next line will be reported too
            continue
        where = f"line {number} ({entry.drill_id})"
        expected_prev_report = previous.report_sha256 if previous else None
        if previous is None and entry.previous_report_sha256 is not None and not problems:
            problems.append(f"{where}: refers to a previous report but is the first line; earlier lines were removed")
        elif previous is not None and entry.previous_report_sha256 != expected_prev_report:
            problems.append(f"{where}: previous_report_sha256 does not match the line before; "
                            "a line was removed, inserted or reordered")
        if entry.line_sha256 != line_hash(entry.hashed_fields(), previous.line_sha256 if previous else None):
            problems.append(f"{where}: line_sha256 does not match; this line or the one before was edited, "
                            "removed or reordered")
        if entry.signature and check_signature is not None:
            problem = check_signature(entry.line_sha256, entry.signature, entry.key_fingerprint or "")
            if problem:
                problems.append(f"{where}: {problem}")
        elif require_signatures and not entry.signature and signing_began:
            # Before the first signed line: a history from before its key existed. After it, the
            # signature was removed (the chain does not cover signatures) or signing was switched off.
            problems.append(f"{where}: not signed, although lines before it are (signature removed, or "
                            "signing switched off)")
        signing_began = signing_began or bool(entry.signature)
        report = (report_bytes_by_id or {}).get(entry.drill_id)
        if report is not None and sha256_hex(report) != entry.report_sha256:
            problems.append(f"{where}: report.json differs from the recorded SHA-256")
        previous = entry
    return problems
