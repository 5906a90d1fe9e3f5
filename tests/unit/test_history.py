import json

import pytest

from drdrill.core.history import (
    HistoryEntry,
    HistoryFormatError,
    last_report_sha256,
    make_line,
    sha256_hex,
    verify_chain,
)

REPORTS = {f"drill-{n}": f'{{"drill_id": "drill-{n}"}}\n'.encode() for n in range(1, 5)}


def build_chain() -> list[str]:
    lines: list[str] = []
    for n, (drill_id, data) in enumerate(REPORTS.items(), start=1):
        lines.append(
            make_line(
                drill_id=drill_id,
                finished_at=f"2025-03-0{n}T02:30:00.000Z",
                verdict="passed" if n % 2 else "failed",
                report_bytes=data,
                previous_line=lines[-1] if lines else None,
            )
        )
    return lines


def test_lines_are_chained():
    lines = build_chain()
    first, second = (json.loads(line) for line in lines[:2])
    assert set(first) == {
        "drill_id", "finished_at", "verdict", "report_sha256", "previous_report_sha256", "line_sha256",
        "v", "files", "summary",
    }  # fmt: skip
    assert first["v"] == 2
    assert first["previous_report_sha256"] is None
    assert first["report_sha256"] == sha256_hex(REPORTS["drill-1"])
    assert second["previous_report_sha256"] == first["report_sha256"]
    assert all("\n" not in line for line in lines)
    assert last_report_sha256(lines) == sha256_hex(REPORTS["drill-4"])
    assert last_report_sha256([]) is None
    assert last_report_sha256([*lines, "", "  "]) == sha256_hex(REPORTS["drill-4"])


def test_intact_chain_has_no_problems():
    assert verify_chain(build_chain(), REPORTS) == []


def test_edited_line_is_detected():
    lines = build_chain()
    entry = json.loads(lines[1])
    entry["verdict"] = "passed"  # turn a failed drill into a pass
    lines[1] = json.dumps(entry)
    problems = verify_chain(lines)
    assert any(p.startswith("line 2 ") and "line_sha256" in p for p in problems)


def test_edited_line_with_recomputed_hash_breaks_the_next_line():
    lines = build_chain()
    forged = make_line(
        drill_id="drill-2",
        finished_at="2025-03-02T02:30:00.000Z",
        verdict="passed",
        report_bytes=REPORTS["drill-2"],
        previous_line=lines[0],
    )
    lines[1] = forged
    problems = verify_chain(lines)
    assert problems and all(p.startswith("line 3 ") for p in problems)


def test_removed_line_is_detected():
    lines = build_chain()
    del lines[1]
    problems = verify_chain(lines)
    assert any("line 2 (drill-3)" in p for p in problems)


def test_removed_first_line_is_detected():
    problems = verify_chain(build_chain()[1:])
    assert any("first line" in p for p in problems)


def test_reordered_lines_are_detected():
    lines = build_chain()
    lines[1], lines[2] = lines[2], lines[1]
    problems = verify_chain(lines)
    assert any(p.startswith("line 2 ") for p in problems)
    assert any(p.startswith("line 3 ") for p in problems)


def test_edited_report_is_detected():
    reports = dict(REPORTS)
    reports["drill-3"] = reports["drill-3"].replace(b"drill-3", b"drill-X")
    problems = verify_chain(build_chain(), reports)
    assert problems == ["line 3 (drill-3): report.json differs from the recorded SHA-256"]


def test_garbage_line_is_reported_not_raised():
    lines = build_chain()
    lines.insert(2, "{not json")
    problems = verify_chain(lines)
    assert any(p.startswith("line 3: not a history entry") for p in problems)


def test_entry_parsing():
    entry = HistoryEntry.from_line(build_chain()[0])
    assert entry.drill_id == "drill-1"
    assert HistoryEntry.from_line(entry.to_line()) == entry
    with pytest.raises(HistoryFormatError):
        HistoryEntry.from_line('{"drill_id": "x"}')
    with pytest.raises(HistoryFormatError):
        last_report_sha256(["garbage"])


def test_format_1_lines_still_verify_and_chain_into_format_2():
    from drdrill.core.history import HistoryEntry, line_hash

    fields = {"drill_id": "old", "finished_at": "2026-01-01T00:00:00.000Z", "verdict": "passed",
              "report_sha256": sha256_hex(b"old report"), "previous_report_sha256": None}
    old = json.dumps({**fields, "line_sha256": line_hash(fields, None)}, sort_keys=True, separators=(",", ":"))
    assert HistoryEntry.from_line(old).v == 1
    new = make_line(drill_id="new", finished_at=None, verdict="failed", report_bytes=b"new report",
                    previous_line=old, files={"report.json": sha256_hex(b"new report")},
                    summary={"target": "local", "rto_seconds": 12.5})
    assert verify_chain([old, new]) == []
    edited = json.loads(new)
    edited["summary"]["rto_seconds"] = 1.0  # a trend made to look better
    assert "line_sha256 does not match" in verify_chain([old, json.dumps(edited)])[0]


def test_signed_lines_name_a_bad_or_missing_signature():
    def sign(digest: str) -> tuple[str, str]:
        return f"sig-of-{digest}", "sha256:key"

    def check(digest: str, signature: str, fingerprint: str) -> str | None:
        return None if signature == f"sig-of-{digest}" else f"signature by {fingerprint} does not hold"

    first = make_line(drill_id="a", finished_at=None, verdict="passed", report_bytes=b"a", previous_line=None,
                      sign=sign)
    second = make_line(drill_id="b", finished_at=None, verdict="passed", report_bytes=b"b", previous_line=first,
                       sign=sign)
    assert verify_chain([first, second], check_signature=check, require_signatures=True) == []
    forged = json.loads(second)
    forged["signature"] = "sig-of-something-else"
    assert "does not hold" in verify_chain([first, json.dumps(forged)], check_signature=check)[0]
    unsigned = make_line(drill_id="c", finished_at=None, verdict="passed", report_bytes=b"c", previous_line=second)
    assert verify_chain([first, second, unsigned], check_signature=check, require_signatures=True) == [
        "line 3 (c): not signed, although lines before it are (signature removed, or signing switched off)"]
    # A history from before signing began: its unsigned lines are not tampering.
    old = make_line(drill_id="o", finished_at=None, verdict="passed", report_bytes=b"o", previous_line=None)
    signed_after = make_line(drill_id="p", finished_at=None, verdict="passed", report_bytes=b"p", previous_line=old,
                             sign=sign)
    assert verify_chain([old, signed_after], check_signature=check, require_signatures=True) == []
