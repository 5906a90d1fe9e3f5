import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from drdrill.core.clock import FakeClock
from drdrill.core.history import sha256_hex, verify_chain
from drdrill.core.objectives import Objectives
from drdrill.core.report import Achieved, Evidence, IndexResult, Problem, Report, TenantResult, Weakness
from drdrill.core.timeline import Timeline
from drdrill.errors import UsageError, VerificationFailed
from drdrill.report import writer as report_writer

START = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
ALL_FILES = {"report.json", "report.md", "report.html", "junit.xml"}


def make_report(verdict: str = "failed", drill_id: str = "drill-1") -> Report:
    clock = FakeClock(START)
    tl = Timeline(clock)
    with tl.phase("backup"):
        clock.advance(40)
    tl.mark_disaster()
    with tl.phase("restore-snapshots"):
        clock.advance(600)
    with pytest.raises(VerificationFailed), tl.phase("verify <all>"):
        clock.advance(20)
        raise VerificationFailed("org1/ns1 logs: expected 100 documents, found 99")
    tl.mark_recovered()
    failed = verdict == "failed"
    return Report(
        drill_id=drill_id,
        target="local",
        started_at=tl.origin,
        finished_at=clock.wall(),
        objectives=Objectives(),
        achieved=Achieved(rto_seconds=620.0, rpo_seconds=3600.0, backup_exposure_seconds=7200.0),
        verdict=verdict,  # type: ignore[arg-type]
        verdict_reasons=["a verification failed"] if failed else ["RTO 10m 20s within target 30m 00s"],
        phases=tl.phases,
        events=tl.events,
        tenants=[TenantResult("org1", "ns1", [IndexResult("logs", 100, 99 if failed else 100)], 3600.0)],
        evidence=Evidence(
            operator="alice", notes={"postgres_dsn": "postgresql://es_user:hunter2@db/es_metadata"}
        ),
        problems=[Problem("verify <all>", "failed", "document count mismatch", "a shard was not restored")],
        weaknesses=[Weakness("legacy -md md5 key derivation")],
    )


def parse_junit(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def files_in(path):
    return {p.name for p in path.iterdir()}


def test_write_report_writes_every_format(tmp_path):
    report = make_report()
    out = report_writer.write_report(report, tmp_path / "r", cucumber_json=[{"name": "f", "password": "pw"}])
    directory = tmp_path / "r"
    assert files_in(directory) == ALL_FILES | {"cucumber.json"}
    data = (directory / "report.json").read_bytes()
    assert data == report.to_json().encode()
    assert out.report_sha256 == sha256_hex(data)
    assert "hunter2" not in data.decode()
    assert json.loads((directory / "cucumber.json").read_text())[0]["password"] == "***"
    md = (directory / "report.md").read_text()
    assert "FAILED" in md and "document count mismatch" in md and "legacy -md md5" in md
    assert "hunter2" not in md


def test_html_is_self_contained_with_svg_timeline(tmp_path):
    report_writer.write_report(make_report(), tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 2
    assert "http://" not in html and "https://" not in html
    assert "<link" not in html and "<script" not in html and "src=" not in html
    assert html.count('class="s-') == 3  # one bar per phase
    assert 'class="s-failed"' in html
    assert 'class="m-disaster"' in html and 'class="m-recovered"' in html
    assert "verify &lt;all&gt;" in html  # autoescape is on
    assert "hunter2" not in html
    assert 'class="verdict v-failed"' in html


def test_junit_has_failures_when_verdict_failed(tmp_path):
    report_writer.write_report(make_report("failed"), tmp_path)
    suite = parse_junit((tmp_path / "junit.xml").read_bytes())
    assert suite.tag == "testsuite" and suite.get("name") == "drdrill"
    assert int(suite.get("failures")) >= 3  # phase, index count, verdict
    assert int(suite.get("tests")) == len(suite.findall("testcase"))
    failed = {tc.get("name") for tc in suite.findall("testcase") if tc.find("failure") is not None}
    assert {"verify <all>", "verdict", "org1/ns1/logs document count"} <= failed
    verify = next(tc for tc in suite.findall("testcase") if tc.get("name") == "verify <all>")
    assert "expected 100 documents" in verify.find("failure").get("message")
    assert verify.get("time") == "20.000"


def test_junit_clean_when_passed():
    report = make_report("passed")
    report.phases[2].status = "passed"
    report.phases[2].error = None
    suite = parse_junit(report_writer.render_junit(report))
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    assert int(suite.get("tests")) == 3 + 2 + 1 + 1  # phases, objectives, index, verdict


def test_history_is_appended_and_chained(tmp_path):
    history = tmp_path / "history.jsonl"
    first = report_writer.write_report(make_report(drill_id="d1"), tmp_path / "d1", history_path=history)
    second = report_writer.write_report(make_report(drill_id="d2"), tmp_path / "d2", history_path=history)
    lines = history.read_text().splitlines()
    assert len(lines) == 2
    assert first.report.previous_report_sha256 is None
    assert second.report.previous_report_sha256 == first.report_sha256
    assert (
        json.loads((tmp_path / "d2" / "report.json").read_text())["previous_report_sha256"]
        == first.report_sha256
    )
    reports = {d: (tmp_path / d / "report.json").read_bytes() for d in ("d1", "d2")}
    assert verify_chain(lines, reports) == []


def test_unreadable_history_refuses_to_write_anything(tmp_path):
    history = tmp_path / "history.jsonl"
    history.write_text("not json\n")
    with pytest.raises(UsageError, match=r"history .* does not verify"):
        report_writer.write_report(make_report(), tmp_path / "r", history_path=history)
    assert files_in(tmp_path / "r") == set()
    assert history.read_text() == "not json\n"


def test_render_failure_leaves_no_partial_files(tmp_path, monkeypatch):
    history = tmp_path / "history.jsonl"
    directory = tmp_path / "r"
    report_writer.write_report(make_report(drill_id="old"), directory, history_path=history)
    before = {name: (directory / name).read_bytes() for name in ALL_FILES}
    history_before = history.read_text()

    def broken(report):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(report_writer, "render_html", broken)
    with pytest.raises(RuntimeError, match="template exploded"):
        report_writer.write_report(make_report(drill_id="new"), directory, history_path=history)
    assert files_in(directory) == ALL_FILES  # no temp files left behind
    assert {name: (directory / name).read_bytes() for name in ALL_FILES} == before
    assert history.read_text() == history_before


def test_replace_failure_cleans_up_temp_files(tmp_path, monkeypatch):
    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report_writer.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        report_writer.write_report(make_report(), tmp_path)
    assert files_in(tmp_path) == set()


def test_rerender_rebuilds_human_formats_without_touching_json(tmp_path):
    report_writer.write_report(make_report(), tmp_path)
    data = (tmp_path / "report.json").read_bytes()
    (tmp_path / "report.html").unlink()
    (tmp_path / "report.md").write_text("stale")
    paths = report_writer.rerender(tmp_path)
    assert set(paths) == {"report.md", "report.html", "junit.xml"}
    assert "<svg" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "report.md").read_text() != "stale"
    assert (tmp_path / "report.json").read_bytes() == data


def test_rerender_usage_errors(tmp_path):
    with pytest.raises(UsageError, match=r"no report\.json"):
        report_writer.rerender(tmp_path)
    (tmp_path / "report.json").write_text("{broken")
    with pytest.raises(UsageError, match="not a valid drdrill report") as info:
        report_writer.rerender(tmp_path)
    assert "\n" not in info.value.one_line()
    (tmp_path / "report.json").write_text('{"schema_version": 1}')
    with pytest.raises(UsageError):
        report_writer.rerender(tmp_path)


def test_summary_text():
    text = report_writer.summary_text(make_report(), "reports/d1/report.html")
    assert text.splitlines()[0] == "Drill drill-1 on local: FAILED"
    assert "RTO  10m 20s" in text and "target 30m 00s" in text
    assert "RPO  1h 00m" in text and "target 24h 00m" in text
    assert "- a verification failed" in text
    assert "restore-snapshots" in text and "10m 00s" in text
    assert "[failed] verify <all>: document count mismatch" in text
    assert text.rstrip().endswith("Report: reports/d1/report.html")
    assert len(text.splitlines()) < 25


def test_unmeasured_objective_is_shown_as_such():
    report = make_report()
    report.achieved.rto_seconds = None
    assert "not measured" in report_writer.summary_text(report)
    suite = parse_junit(report_writer.render_junit(report))
    rto = next(tc for tc in suite.findall("testcase") if tc.get("name") == "RTO")
    # Not measured is not evidenced: skipped with the reason, never passed (the verdict fails).
    assert rto.find("skipped") is not None and rto.find("failure") is None


def test_junit_shows_each_scenario_verdict_and_skipped_steps():
    from drdrill.core.report import Scenario, Step

    report = make_report("passed")
    report.scenarios = [Scenario("MinIO down", "passed", [
        Step("When MinIO goes down", "passed", 0.1, line=3),
        Step("And every tenant's snapshot is restored from MinIO", "skipped", None, "not run", line=4),
        Step("Then the recovery fails in phase \"x\"", "passed", 0.0, line=5),
    ], verdict="passed", verdict_reasons=["expected failure, diagnosed"], expected_failure=True)]
    suite = parse_junit(report_writer.render_junit(report))
    cases = {(tc.get("classname"), tc.get("name")): tc for tc in suite.findall("testcase")}
    assert cases[("drdrill.scenario", "MinIO down")].find("failure") is None
    skipped = cases[("drdrill.step.MinIO down", "And every tenant's snapshot is restored from MinIO")]
    assert skipped.find("skipped") is not None
    assert cases[("drdrill.step.MinIO down", "When MinIO goes down")].find("skipped") is None
    assert suite.get("skipped") == "1"
    markdown = report_writer.render_markdown(report)
    assert "expected failure, diagnosed" in markdown and "skipped: And every tenant" in markdown
