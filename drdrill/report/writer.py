"""Write a drill report: report.json plus its human and CI renderings, and the history line.

Every format is rendered in memory from the *redacted* report.json first, then written to
temporary files in the report directory and moved into place with ``os.replace``; a failure
anywhere before the moves leaves no new or half-written file behind.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from drdrill.core.clock import to_iso
from drdrill.core.evidenced import objective_results
from drdrill.core.history import HistoryFormatError, last_entry, make_line, sha256_hex, verify_chain
from drdrill.core.report import Report, ReportFormatError, redact
from drdrill.errors import HarnessError, UsageError
from drdrill.evidence.keys import Signer, holds
from drdrill.report.views import auditor_view, dur, objective_bars, scenario_groups, trend_view

REPORT_JSON = "report.json"

@functools.cache
def _templates() -> jinja2.Environment:
    """Built on first render, not at import: the loader looks at the file system."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("drdrill.report", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the test suite, not silently
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(dur=dur, size=_size, iso=lambda dt: "—" if dt is None else to_iso(dt), md_cell=_md_cell)
    return env


def _size(nbytes: int | None) -> str:
    """Bytes as a person reads them (binary units, as Elasticsearch's)."""
    if nbytes is None:
        return "—"
    value, unit = float(nbytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"


def _md_cell(value: Any) -> str:
    # One line, no column breaks, and no "<" that a Markdown viewer would take for an HTML tag.
    return " ".join(str(value).split()).replace("|", "\\|").replace("<", "&lt;")




@dataclass
class WrittenReport:
    report: Report  # as written, with previous_report_sha256 filled in from the history
    directory: Path
    files: dict[str, Path]
    report_sha256: str
    history_line: str | None


# --- rendering ------------------------------------------------------------------------------


def render_markdown(report: Report) -> str:
    return _templates().get_template("report.md.j2").render(r=report, groups=scenario_groups(report),
                                                            objective_bars=objective_bars(report))


def render_html(report: Report) -> str:
    return _templates().get_template("report.html.j2").render(
        r=report, groups=scenario_groups(report), objective_bars=objective_bars(report), trend=trend_view(report),
        auditor=auditor_view(report),
    )


_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: str) -> str:
    # ElementTree escapes markup but not control characters, which XML 1.0 forbids.
    return _XML_BAD.sub("?", text)


# A check the drill never made is skipped, with its reason: never passed, never failed.
_JUNIT_OUTCOME = {"passed": "passed", "failed": "failed", "not evidenced": "skipped", "not verified": "skipped"}


def render_junit(report: Report) -> bytes:
    """One testsuite "drdrill": a testcase per phase, objective, index verification and
    scenario, plus one for the verdict so a failed drill always shows as a failed suite."""
    suite = ET.Element("testsuite", name="drdrill", timestamp=to_iso(report.started_at))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(
        classname: str, name: str, outcome: str, message: str = "", seconds: float | None = None
    ) -> None:
        tc = ET.SubElement(suite, "testcase", classname=classname, name=_x(name))
        if seconds is not None:
            tc.set("time", f"{seconds:.3f}")
        counts["tests"] += 1
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(outcome)
        if tag:
            counts["failures" if tag == "failure" else "errors" if tag == "error" else "skipped"] += 1
            first_line = message.splitlines()[0] if message else outcome
            ET.SubElement(tc, tag, message=_x(first_line)).text = _x(message)

    for p in report.phases:
        outcome = "error" if p.status == "incomplete" else p.status
        related = [
            f"{pr.summary}: {pr.diagnosis}" if pr.diagnosis else pr.summary
            for pr in report.problems
            if pr.phase == p.name and pr.kind != "warning"
        ]
        message = "\n".join(filter(None, [p.error or p.detail or f"phase {p.status}", *related]))
        case("drdrill.phase", p.name, outcome, message, p.duration_seconds)
    if report.scenarios:
        # Each scenario against its own objectives; a fault scenario has none to meet.
        for s in report.scenarios:
            for r in [] if s.expected_failure else objective_results(s, report.objectives):
                case("drdrill.objective", f"{s.name}: {r.label}", _JUNIT_OUTCOME[r.status], r.reason)
    else:
        for bar in objective_bars(report):
            case("drdrill.objective", bar["name"], {"ok": "passed", "over": "failed"}.get(bar["state"], "skipped"),
                 f"{bar['name']} {bar['achieved']} vs target {bar['target']}")
    for t in report.tenants:
        for i in t.indices:
            case(
                "drdrill.verify",
                f"{t.scenario + ': ' if t.scenario else ''}{t.org_id}/{t.namespace}/{i.name} document count",
                _JUNIT_OUTCOME[i.status or "not verified"],
                i.reason or f"expected {i.docs_expected} documents, restored {i.docs_restored}",
            )
    for s in report.scenarios:
        verdict = s.verdict or s.status
        failed = next((st.error or st.text for st in s.steps if st.status in ("failed", "undefined")), "")
        message = "; ".join(s.verdict_reasons) if verdict != "passed" else ""
        case("drdrill.scenario", s.name, verdict, "\n".join(filter(None, [message, failed])) or f"scenario {verdict}")
        for st in s.steps:
            outcome = "error" if st.status == "undefined" else st.status
            case(f"drdrill.step.{s.name}", st.text, outcome, st.error or "", st.duration_seconds)
    reasons = "\n".join(report.verdict_reasons) or f"verdict {report.verdict}"
    case("drdrill", "verdict", report.verdict, reasons if report.verdict != "passed" else "")
    for key, value in counts.items():
        suite.set(key, str(value))
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n"


def summary_text(report: Report, report_path: str | os.PathLike[str] | None = None) -> str:
    """One screen for the terminal: verdict, objectives, phase times, problems, where the report is."""
    a = report.achieved
    lines = [
        f"Drill {report.drill_id} on {report.target}: {report.verdict.upper()}"
        + (" (incomplete)" if report.incomplete else "")
    ]
    for bar in objective_bars(report):
        lines.append(f"  {bar['name']:<4} {bar['achieved']:<16} target {bar['target']:<10} {bar['state']}"
                     if len(bar["name"]) <= 4 else
                     f"  {bar['name']}: {bar['achieved']}, target {bar['target']}, {bar['state']}")
    if a.backup_exposure_seconds is not None:
        lines.append(f"  backup exposure {dur(a.backup_exposure_seconds)}")
    if report.verdict != "passed":
        lines += [f"  - {reason}" for reason in report.verdict_reasons]
    if report.scenarios:
        lines.append("Scenarios:")
        for s in report.scenarios:
            verdict = (s.verdict or s.status).upper()
            own = s.objectives or report.objectives
            why = "expected failure, diagnosed" if s.expected_failure and s.verdict == "passed" else \
                f"RTO {dur(s.achieved.rto_seconds)}, RPO {dur(s.achieved.rpo_seconds)}" + (
                    "" if own == report.objectives else
                    f"; its objectives RTO {dur(own.rto_seconds)}, RPO {dur(own.rpo_seconds)}")
            lines.append(f"  {verdict:<7} {s.name} ({why})")
    lines.append("Phases:")
    width = max((len(p.name) for p in report.phases), default=0)
    lines += [f"  {p.name:<{width}}  {dur(p.duration_seconds):>10}  {p.status}" for p in report.phases]
    problems = [p for p in report.problems if p.kind != "warning"]
    if problems:
        lines.append("Problems:")
        lines += [f"  [{p.kind}] {p.phase or '-'}: {p.summary}" for p in problems[:5]]
        if len(problems) > 5:
            lines.append(f"  … and {len(problems) - 5} more")
    if report_path is not None:
        lines.append(f"Report: {report_path}")
    return "\n".join(lines) + "\n"


def _render_all(report: Report) -> dict[str, bytes]:
    return {
        "report.md": render_markdown(report).encode("utf-8"),
        "report.html": render_html(report).encode("utf-8"),
        "junit.xml": render_junit(report),
    }


# --- files ----------------------------------------------------------------------------------


def _replace_all(directory: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write every file to a temporary sibling, then move them all into place."""
    temps: dict[str, Path] = {}
    try:
        for name, data in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=(directory / name).parent, prefix=f".{Path(name).name}.",
                                            suffix=".tmp")
            temps[name] = Path(tmp_name)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, 0o644)  # mkstemp's 0600 would hide the report from auditors and CI
        for name, tmp in temps.items():
            os.replace(tmp, directory / name)
    finally:
        for leftover in temps.values():
            leftover.unlink(missing_ok=True)  # only leftovers remain after a failure
    return {name: directory / name for name in files}


def _read_history(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def write_report(
    report: Report,
    report_dir: str | os.PathLike[str],
    history_path: str | os.PathLike[str] | None = None,
    cucumber_json: list[Any] | None = None,
    extra_files: dict[str, bytes] | None = None,
    signer: Signer | None = None,
) -> WrittenReport:
    """Write report.json, report.md, report.html, junit.xml (and cucumber.json and
    ``extra_files``, e.g. logs, by relative name), then append the report's line to the history
    file, chaining it to the previous drill: the chain is verified first, every file written is
    hashed into the line, and ``signer`` signs it."""
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    history = Path(history_path) if history_path is not None else None
    history_text = _read_history(history) if history else ""
    previous_line = None
    if history:
        # Never extend a broken chain: that is exactly what a tamperer would want.
        check_history(history_text, history, signer)
        last = last_entry(history_text.splitlines())
        previous_line = last.to_line() if last else None
        report = replace(report, previous_report_sha256=last.report_sha256 if last else None)
    if signer is not None:
        report.evidence.notes["signing_key"] = signer.fingerprint

    json_bytes = report.to_json().encode("utf-8")
    # Render from what report.json says (redacted), so no format can show more than it does.
    written = Report.from_json(json_bytes)
    files = {REPORT_JSON: json_bytes, **_render_all(written)}
    if cucumber_json is not None:
        files["cucumber.json"] = (json.dumps(redact(cucumber_json), indent=2, sort_keys=True) + "\n").encode()
    for name, data in (extra_files or {}).items():
        if name in files or Path(name).is_absolute() or ".." in Path(name).parts:
            raise HarnessError(f"report file name {name!r} is not allowed")
        files[name] = data
    paths = _replace_all(directory, files)

    line = None
    if history:
        line = make_line(
            drill_id=report.drill_id,
            finished_at=None if written.finished_at is None else to_iso(written.finished_at),
            verdict=report.verdict,
            report_bytes=json_bytes,
            previous_line=previous_line,
            files={name: sha256_hex(data) for name, data in sorted(files.items())},
            report_dir=_relative(directory, history.parent),
            summary=history_summary(written),
            sign=signer.sign_text if signer is not None else None,
        )
        history.parent.mkdir(parents=True, exist_ok=True)
        separator = "\n" if history_text and not history_text.endswith("\n") else ""
        # One O_APPEND write per line: concurrent drills cannot interleave within a line, and
        # two lines chained to the same predecessor show up in verify_chain.
        with history.open("ab") as fh:
            fh.write(f"{separator}{line}\n".encode())
            fh.flush()
            os.fsync(fh.fileno())
    return WrittenReport(written, directory, paths, sha256_hex(json_bytes), line)


def check_history(text: str, path: Path, signer: Signer | None = None) -> None:
    """Refuse a history whose chain (or, with a key, a signature) does not hold."""
    check = None
    if signer is not None:
        public = signer.key.public_key()
        mine = signer.fingerprint

        def check(digest: str, signature: str, fingerprint: str) -> str | None:
            if fingerprint != mine:
                return None  # signed with an earlier key: the chain still vouches for it
            return None if holds(public, digest.encode(), signature) else f"the signature by {mine} does not hold"
    try:
        problems = verify_chain(text.splitlines(), check_signature=check)
    except HistoryFormatError as exc:  # pragma: no cover - verify_chain reports these itself
        problems = [str(exc)]
    if problems:
        raise UsageError(f"history {path} does not verify: {problems[0]}",
                         hint="restore it from its backup, or set [history] path to start a new one "
                              "(keep the old one as evidence)")


def history_summary(report: Report) -> dict[str, Any]:
    """What a trend needs from a drill without opening its report."""
    a = report.achieved
    return {"target": report.target, "rto_seconds": a.rto_seconds, "rpo_seconds": a.rpo_seconds,
            "backup_exposure_seconds": a.backup_exposure_seconds, "tenants": len({t.key for t in report.tenants}),
            "documents": sum(i.docs_restored or 0 for t in report.tenants for i in t.indices),
            "objectives": {"rto_seconds": report.objectives.rto_seconds,
                           "rpo_seconds": report.objectives.rpo_seconds},
            # Each scenario against its own objectives: a run may mix "RTO 5m" with the runbook's.
            "scenarios": [{"name": s.name, "verdict": s.verdict or s.status, "rto_seconds": s.achieved.rto_seconds,
                           "rpo_seconds": s.achieved.rpo_seconds,
                           "objectives": {"rto_seconds": (s.objectives or report.objectives).rto_seconds,
                                          "rpo_seconds": (s.objectives or report.objectives).rpo_seconds}}
                          for s in report.scenarios]}


def _relative(directory: Path, base: Path) -> str:
    try:
        return os.path.relpath(directory.resolve(), base.resolve())
    except ValueError:
        return str(directory.resolve())


def rerender(report_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Re-render report.md, report.html and junit.xml from report.json (``drdrill report DIR``).

    report.json itself is left untouched: its bytes are what the history hash chain vouches for.
    """
    path = Path(report_dir) / REPORT_JSON
    try:
        report = Report.from_json(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(
            f"no {REPORT_JSON} in {report_dir}", hint="give the directory a drill wrote"
        ) from None
    except (OSError, ReportFormatError) as exc:
        raise UsageError(f"{path} is not a valid drdrill report: {exc}") from None
    return _replace_all(Path(report_dir), _render_all(report))
