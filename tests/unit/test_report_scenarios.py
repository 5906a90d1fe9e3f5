"""Each scenario's own figures in every format, and fail-closed results: a check the drill never
made is skipped or "not evidenced", never passed and never failed (issue 22)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from drdrill.adapters.crypto import KdfSpec
from drdrill.core.clock import FakeClock
from drdrill.core.evidenced import objective_results
from drdrill.core.layout import Tenant
from drdrill.core.objectives import Objectives, achieved_rpo
from drdrill.core.report import Achieved, Report, Scenario, Step
from drdrill.core.timeline import Timeline
from drdrill.drill import checks as chk
from drdrill.drill.outcome import DrillOutcome
from drdrill.drill.reporting import RunInfo, build_report
from drdrill.report import writer

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
TENANTS = [Tenant("org1", "ns1"), Tenant("org1", "ns2")]
RUNBOOK = Objectives()  # 30 min, 24 h


def _outcome(name: str, docs: int, *, rto: float = 10.0, loss: dict[str, float] | None = None,
             counted: bool = True, objectives: Objectives = RUNBOOK) -> DrillOutcome:
    """A scenario over org1/ns1 and org1/ns2, ``docs`` documents in one index each; ``loss``:
    seconds lost per tenant (its Elasticsearch store)."""
    checks = []
    if counted:
        for t in TENANTS:
            index = f"{t.org_id}-{t.namespace}-data"
            checks += [chk.Check(f"index {index} is green", True, "health green", t.key),
                       chk.Check(f"index {index} document count", True, f"expected {docs}, restored {docs}", t.key,
                                 {"docs_expected": docs, "docs_restored": docs})]
    loss = loss or {t.key: 2.0 for t in TENANTS}
    newest = {(key, "elasticsearch"): T0 - timedelta(seconds=s) for key, s in loss.items()}
    newest |= {(t.key, "postgresql"): T0 - timedelta(seconds=0.5) for t in TENANTS}
    return DrillOutcome(
        scenario=name, objectives=objectives, timeline=Timeline(FakeClock(T0)), problems=[],
        checks=[*checks, chk.Check("tenant_containers rows of org1/ns1", True, "", "org1/ns1")],
        backup=None, metadata_restores=[], snapshot_restores=[],
        expected_docs={t.key: {f"{t.org_id}-{t.namespace}-data": docs} for t in TENANTS},
        rpo=achieved_rpo(T0, newest, canary_started_at=T0 - timedelta(hours=1)), rto_seconds=rto,
        exposure_seconds=30.0, tenants=list(TENANTS), kdf=KdfSpec(), versions={}, harness_error=False,
        uncertain=False)


STEPS = ("Given the platform holds these tenants:", "When the site is lost", "And data integrity is verified",
         "Then every index is green with the documents its snapshot held",
         "And the recovery time is within the objective", "And the data loss is within the objective")


def _ran(name: str, failed_at: int | None = None) -> Scenario:
    """The scenario's step record: all passed, or one failed and the rest not run."""
    steps = []
    for n, text in enumerate(STEPS):
        status = "passed" if failed_at is None or n < failed_at else "failed" if n == failed_at else "skipped"
        steps.append(Step(text, status, error="count mismatch" if status == "failed" else  # type: ignore[arg-type]
                          "not run: an earlier step failed" if status == "skipped" else None, line=n + 3))
    return Scenario(name, "failed" if failed_at is not None else "passed", steps)


def _report(*outcomes: DrillOutcome, failed_at: dict[str, int] | None = None) -> Report:
    run = RunInfo("d1", "local", T0, T0 + timedelta(minutes=5), RUNBOOK)
    scenarios = [_ran(o.scenario, (failed_at or {}).get(o.scenario)) for o in outcomes]
    report = build_report(run, list(outcomes), Timeline(FakeClock(T0)), scenarios)
    return Report.from_json(report.to_json())  # what every format is rendered from


def _junit(report: Report) -> dict[tuple[str, str], ET.Element]:
    suite = ET.fromstring(writer.render_junit(report))
    return {(tc.get("classname") or "", tc.get("name") or ""): tc for tc in suite.findall("testcase")}


def _outcome_of(tc: ET.Element) -> str:
    return next((tag for tag in ("failure", "error", "skipped") if tc.find(tag) is not None), "passed")


def test_two_scenarios_reusing_tenant_names_keep_their_own_counts_and_rpos():
    big = _outcome("big", 300, loss={"org1/ns1": 2.9441, "org1/ns2": 1.5})
    small = _outcome("small", 200, loss={"org1/ns1": 3.67, "org1/ns2": 3.1})
    report = _report(big, small)
    first, second = report.scenarios
    assert [i.docs_restored for t in first.tenants for i in t.indices] == [300, 300]
    assert [i.docs_restored for t in second.tenants for i in t.indices] == [200, 200]
    for scenario in report.scenarios:  # a scenario's worst tenant RPO is its RPO, exactly
        assert max(t.rpo_seconds or 0 for t in scenario.tenants) == scenario.achieved.rpo_seconds
    assert first.achieved.rpo_seconds == 2.944 and first.tenants[0].rpo_by_store["elasticsearch"] == 2.944
    # The run's rows: derived from the scenarios, each saying whose it is.
    rows = [(t.scenario, t.key, t.indices[0].docs_restored, t.rpo_seconds) for t in report.tenants]
    assert rows == [("big", "org1/ns1", 300, 2.944), ("big", "org1/ns2", 300, 1.5),
                    ("small", "org1/ns1", 200, 3.67), ("small", "org1/ns2", 200, 3.1)]
    data = json.loads(report.to_json())
    assert data["schema_version"] == 2 and data["tenants"][2]["scenario"] == "small"
    assert data["scenarios"][0]["tenants"][0]["indices"][0]["docs_restored"] == 300
    assert data["scenarios"][0]["objectives"] == {"rto_seconds": 1800.0, "rpo_seconds": 86400.0}

    markdown = writer.render_markdown(report)
    big_md, small_md = markdown.split("## Scenario: big")[1].split("## Scenario: small")
    assert "| 300 |" in big_md and "| 200 |" not in big_md and "2.94s" in big_md and "3.67s" not in big_md
    assert "| 200 |" in small_md.split("## Events")[0] and "| 300 |" not in small_md
    html = writer.render_html(report)
    big_html, small_html = html.split("Scenario: big")[1].split("Scenario: small")
    assert "<td>300" in big_html and "<td>200" not in big_html
    assert "<td>200" in small_html and "<td>300" not in small_html
    cases = _junit(report)
    assert _outcome_of(cases[("drdrill.verify", "big: org1/ns1/org1-ns1-data document count")]) == "passed"
    assert _outcome_of(cases[("drdrill.verify", "small: org1/ns1/org1-ns1-data document count")]) == "passed"
    assert "big: RTO <= 30m 00s" in {name for _, name in cases}


def test_a_metadata_only_drill_leaves_its_indices_not_verified_and_its_junit_clean():
    report = _report(_outcome("metadata only", 100, counted=False))
    assert report.verdict == "passed"
    index = report.scenarios[0].tenants[0].indices[0]
    assert (index.status, index.docs_restored) == ("not verified", None)
    assert "did not restore" in (index.reason or "")
    suite = ET.fromstring(writer.render_junit(report))
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    case = _junit(report)[("drdrill.verify", "metadata only: org1/ns1/org1-ns1-data document count")]
    assert _outcome_of(case) == "skipped" and "did not restore" in case.find("skipped").get("message")  # type: ignore[union-attr]
    assert "not verified" in writer.render_markdown(report)


def test_a_scenarios_own_objectives_are_the_ones_it_is_shown_against_everywhere():
    tight = Objectives(5 * 60, 3600)
    report = _report(_outcome("tight", 100, rto=12, objectives=tight))
    # One scenario: the run is held to its objectives, not the runbook's 30 minutes.
    assert report.objectives == tight and report.scenarios[0].objectives == tight
    assert [c.promise for c in report.controls[:2]] == ["RTO <= 5m 00s", "RPO <= 1h 00m"]
    assert report.controls[0].status == "passed"
    assert ("drdrill.objective", "tight: RTO <= 5m 00s") in _junit(report)
    assert "target 5m 00s" in writer.summary_text(report)
    assert "| RTO | 12.00s | 5m 00s | ok |" in writer.render_markdown(report)
    assert writer.history_summary(report)["objectives"]["rto_seconds"] == 300
    # Beside a scenario held to the runbook's: each row and promise against its own target.
    mixed = _report(_outcome("tight", 100, rto=400, objectives=tight), _outcome("runbook", 100, rto=400))
    assert mixed.objectives == RUNBOOK
    promises = {c.promise: c.status for c in mixed.controls}
    assert promises["RTO <= 5m 00s"] == "failed" and promises["RTO <= 30m 00s"] == "passed"
    cases = _junit(mixed)
    assert _outcome_of(cases[("drdrill.objective", "tight: RTO <= 5m 00s")]) == "failure"
    assert _outcome_of(cases[("drdrill.objective", "runbook: RTO <= 30m 00s")]) == "passed"
    markdown = writer.render_markdown(mixed)
    assert "| RTO · tight | 6m 40s | 5m 00s | over |" in markdown
    assert "| RTO · runbook | 6m 40s | 30m 00s | ok |" in markdown
    assert {s["name"]: s["objectives"]["rto_seconds"] for s in writer.history_summary(mixed)["scenarios"]} == {
        "tight": 300, "runbook": 1800}


def test_an_objective_step_skipped_after_a_failure_is_not_evidenced_anywhere():
    # The indices step failed; the RTO and RPO steps never ran (RTO was measured, within target).
    report = _report(_outcome("broken", 100), failed_at={"broken": 3})
    assert report.verdict == "failed"
    rto = next(c for c in report.controls if c.promise.startswith("RTO"))
    assert rto.status == "not evidenced" and "was skipped" in rto.evidence
    case = _junit(report)[("drdrill.objective", "broken: RTO <= 30m 00s")]
    assert _outcome_of(case) == "skipped"
    assert "| RTO | 10.00s | 30m 00s | not evidenced |" in writer.render_markdown(report)
    assert "RTO" in writer.summary_text(report) and " ok" not in writer.summary_text(report).split("Scenarios")[0]
    # Beyond its target it failed, whatever the steps did: the recovery was attempted and missed it.
    slow = _report(_outcome("slow", 100, rto=3600), failed_at={"slow": 3})
    assert next(c for c in slow.controls if c.promise.startswith("RTO")).status == "failed"
    # The RTO step ran and passed, then the RPO step itself failed: each says what its own step did.
    late = _report(_outcome("late", 100), failed_at={"late": 5})
    assert [c.status for c in late.controls[:2]] == ["passed", "failed"]


def test_objective_results_fail_closed():
    achieved = Achieved(rto_seconds=10.0, rpo_seconds=2.0)
    passed = Scenario("s", "passed", [Step("Then the recovery time is within the objective", "passed")],
                      achieved=achieved, objectives=Objectives(60, 60))
    assert [r.status for r in objective_results(passed, RUNBOOK)] == ["passed", "passed"]
    # No step of its own: checked by the verdict, so every step must have run.
    plain = Scenario("s", "passed", [Step("When x", "passed"), Step("Then y", "skipped", error="not run")],
                     achieved=achieved)
    assert {r.status for r in objective_results(plain, RUNBOOK)} == {"not evidenced"}
    assert objective_results(Scenario("s", "passed", achieved=achieved), RUNBOOK)[0].status == "not evidenced"
    unmeasured = Scenario("s", "passed", [Step("When x", "passed")])
    assert objective_results(unmeasured, RUNBOOK)[0].status == "not evidenced"
    fault = Scenario("s", "passed", [Step("When x", "passed")], achieved=achieved, expected_failure=True)
    assert "fault scenario" in objective_results(fault, RUNBOOK)[0].reason


def test_a_version_1_report_still_loads_and_renders():
    old = {
        "schema_version": 1, "drill_id": "old", "target": "local", "started_at": "2026-01-01T00:00:00.000Z",
        "finished_at": None, "objectives": {"rto_seconds": 1800, "rpo_seconds": 86400},
        "achieved": {"rto_seconds": 5.0, "rpo_seconds": 1.0, "backup_exposure_seconds": 3.0}, "verdict": "passed",
        "tenants": [{"org_id": "org1", "namespace": "ns1", "rpo_seconds": 1.0, "rpo_by_store": {},
                     "indices": [{"name": "i", "docs_expected": 10, "docs_restored": 10}]},
                    {"org_id": "org2", "namespace": "ns1", "rpo_seconds": None, "rpo_by_store": {},
                     "indices": [{"name": "j", "docs_expected": 10, "docs_restored": None}]}],
        "scenarios": [{"name": "s", "status": "passed", "steps": [], "verdict": "passed",
                       "achieved": {"rto_seconds": 5.0, "rpo_seconds": 1.0}, "tenants": ["org1/ns1", "org2/ns1"]}],
    }
    report = Report.from_dict(old)
    assert report.schema_version == 2 and report.scenarios[0].objectives is None
    assert [t.key for t in report.scenarios[0].tenants] == ["org1/ns1", "org2/ns1"]
    assert report.scenarios[0].tenants[1].indices[0].status == "not verified"
    assert "| org1/ns1 | i | 10 | 10 |" in writer.render_markdown(report)
    assert ET.fromstring(writer.render_junit(report)).get("failures") == "0"
    writer.render_html(report)


def test_every_promise_carries_the_controls_it_evidences_from_the_shipped_mapping():
    from drdrill.drill.controls import standards

    mapping = standards()
    report = _report(_outcome("s", 100))
    assert {c.key for c in report.controls} == set(mapping)
    rto = next(c for c in report.controls if c.key == "rto")
    assert "DORA Art. 11" in rto.standards and "NIST SP 800-53 CP-4" in rto.standards
    assert "ISO/IEC 27001:2022 A.8.13" in next(c for c in report.controls if c.key == "rpo").standards
    assert any("SOC 2 A1.3" in c.standards for c in report.controls)
    assert json.loads(report.to_json())["controls"][0]["standards"] == rto.standards
    assert "NIST SP 800-53 CP-9(1)" in writer.render_markdown(report)
    assert "SOC 2 A1.2" in writer.render_html(report)
