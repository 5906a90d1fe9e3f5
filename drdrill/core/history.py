"""The drill history: one JSON line per drill, chained by hashes so edits show.

A line is ``{drill_id, finished_at, verdict, report_sha256, previous_report_sha256,
line_sha256}``. ``report_sha256`` is the SHA-256 of the exact ``report.json`` bytes;
``line_sha256`` hashes the line's other fields together with the previous line's
``line_sha256``. Editing, removing or reordering a line therefore breaks the hash of that line
or of the next one; editing a ``report.json`` breaks its ``report_sha256``.

Limit, by construction: whoever can rewrite the whole file can rebuild a consistent chain, and
dropping the *last* line leaves a valid shorter chain. Anchor the newest ``line_sha256``
elsewhere (CI logs, the next report) when that matters.

Everything here works on strings and bytes; appending to the file is the writer's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

_HASHED_FIELDS = ("drill_id", "finished_at", "verdict", "report_sha256", "previous_report_sha256")


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

    def to_line(self) -> str:
        """The line without its newline; compact so that one drill is one line."""
        return _canonical(asdict(self)).decode("utf-8")

    @classmethod
    def from_line(cls, line: str) -> HistoryEntry:
        try:
            data = json.loads(line)
            return cls(**{name: data[name] for name in (*_HASHED_FIELDS, "line_sha256")})
        except (ValueError, KeyError, TypeError) as exc:
            raise HistoryFormatError(f"not a history entry: {exc}") from exc


def line_hash(fields: Mapping[str, Any], previous_line_sha256: str | None) -> str:
    """SHA-256 over the hashed fields and the previous line's hash."""
    payload = {name: fields[name] for name in _HASHED_FIELDS}
    payload["previous_line_sha256"] = previous_line_sha256
    return sha256_hex(_canonical(payload))


def _entries(lines: Iterable[str]) -> list[tuple[int, str]]:
    """(1-based line number, text) of the non-blank lines."""
    return [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]


def last_entry(lines: Iterable[str]) -> HistoryEntry | None:
    entries = _entries(lines)
    return HistoryEntry.from_line(entries[-1][1]) if entries else None


def last_report_sha256(lines: Iterable[str]) -> str | None:
    """The ``report_sha256`` of the newest drill: the next report's ``previous_report_sha256``."""
    last = last_entry(lines)
    return None if last is None else last.report_sha256


def make_line(
    *, drill_id: str, finished_at: str | None, verdict: str, report_bytes: bytes, previous_line: str | None
) -> str:
    """The history line for a report, chained to ``previous_line`` (None for the first drill)."""
    previous = HistoryEntry.from_line(previous_line) if previous_line and previous_line.strip() else None
    fields: dict[str, Any] = {
        "drill_id": drill_id,
        "finished_at": finished_at,
        "verdict": verdict,
        "report_sha256": sha256_hex(report_bytes),
        "previous_report_sha256": previous.report_sha256 if previous else None,
    }
    entry = HistoryEntry(**fields, line_sha256=line_hash(fields, previous.line_sha256 if previous else None))
    return entry.to_line()


def verify_chain(lines: Iterable[str], report_bytes_by_id: Mapping[str, bytes] | None = None) -> list[str]:
    """Problems found in the chain (empty when intact), one line each.

    With ``report_bytes_by_id`` (drill_id → the report.json bytes), also checks that each
    supplied report is byte-for-byte the one the history recorded.
    """
    problems: list[str] = []
    previous: HistoryEntry | None = None
    for number, text in _entries(lines):
        try:
            entry = HistoryEntry.from_line(text)
        except HistoryFormatError as exc:
            problems.append(f"line {number}: {exc}")
            previous = None  # nothing to chain against; the next line will be reported too
            continue
        expected_prev_report = previous.report_sha256 if previous else None
        if previous is None and entry.previous_report_sha256 is not None and not problems:
            problems.append(
                f"line {number} ({entry.drill_id}): refers to a previous report but is the first line; "
                "earlier lines were removed"
            )
        elif previous is not None and entry.previous_report_sha256 != expected_prev_report:
            problems.append(
                f"line {number} ({entry.drill_id}): previous_report_sha256 does not match the line before; "
                "a line was removed, inserted or reordered"
            )
        if entry.line_sha256 != line_hash(asdict(entry), previous.line_sha256 if previous else None):
            problems.append(
                f"line {number} ({entry.drill_id}): line_sha256 does not match; "
                "this line or the one before was edited, removed or reordered"
            )
        report = (report_bytes_by_id or {}).get(entry.drill_id)
        if report is not None and sha256_hex(report) != entry.report_sha256:
            problems.append(
                f"line {number} ({entry.drill_id}): report.json differs from the recorded SHA-256"
            )
        previous = entry
    return problems
