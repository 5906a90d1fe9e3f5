"""Issue 22 on real services: two scenarios that reuse tenant names at different sizes each
report their own counts, RPOs and objectives in every format, and a metadata-only scenario's
indices, which it never restores, are "not verified", never a junit failure."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

FEATURE = """\
@destructive
Feature: Two scenarios that reuse tenant names at different sizes

  Scenario: Big tenants within five minutes
    Given the objectives are RTO 5m and RPO 1h
    And the platform holds these tenants:
      | org_id | namespace | indices | documents |
      | org1   | ns1       | 1       | 150       |
      | org1   | ns2       | 1       | 150       |
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
    And the recovery time is within the objective
    And the data loss is within the objective

  Scenario: Small tenants with the runbook's objectives
    Given the platform holds these tenants:
      | org_id | namespace | indices | documents |
      | org1   | ns1       | 1       | 40        |
      | org1   | ns2       | 1       | 40        |
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
    And the recovery time is within the objective
    And the data loss is within the objective

  Scenario: Metadata only
    Given the platform holds 2 tenants with 1 indices of 70 documents each
    And the nightly backup has run
    When the metadata database is lost
    And PostgreSQL is redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And metadata integrity is verified
    Then the tenant_containers rows match the backup
    And the recovery time is within the objective
    And the data loss is within the objective
"""

BIG, SMALL, METADATA = ("Big tenants within five minutes", "Small tenants with the runbook's objectives",
                        "Metadata only")


@pytest.fixture(scope="module")
def drilled(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("per-scenario")
    (root / "two_sizes.feature").write_text(FEATURE)
    report_dir = root / "report"
    result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", str(root / "two_sizes.feature"),
                             "--report-dir", str(report_dir), "--project-dir", str(root)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    return report_dir


def test_report_json_holds_each_scenarios_own_tenants_and_objectives(drilled):
    report = json.loads((drilled / "report.json").read_text())
    assert report["schema_version"] == 2
    scenarios = {s["name"]: s for s in report["scenarios"]}
    sizes = {BIG: 150, SMALL: 40}
    for name, docs in sizes.items():
        tenants = scenarios[name]["tenants"]
        assert [t["org_id"] + "/" + t["namespace"] for t in tenants] == ["org1/ns1", "org1/ns2"]
        for tenant in tenants:
            assert [(i["docs_expected"], i["docs_restored"], i["status"]) for i in tenant["indices"]] == [
                (docs, docs, "passed")]
            assert tenant["rpo_seconds"] > 0 and tenant["restore_seconds"] > 0
            assert max(tenant["rpo_by_store"].values()) == tenant["rpo_seconds"]
    for scenario in scenarios.values():  # its worst tenant's RPO is its RPO
        assert max(t["rpo_seconds"] for t in scenario["tenants"]) == scenario["achieved"]["rpo_seconds"]
    assert scenarios[BIG]["objectives"] == {"rto_seconds": 300.0, "rpo_seconds": 3600.0}
    assert scenarios[SMALL]["objectives"] == {"rto_seconds": 1800.0, "rpo_seconds": 86400.0}
    # A metadata-only drill restores no index: not verified, with the reason.
    for tenant in scenarios[METADATA]["tenants"]:
        assert [(i["docs_restored"], i["status"]) for i in tenant["indices"]] == [(None, "not verified")]
    # The run's rows are the scenarios' own, each naming its scenario.
    rows = [(t["scenario"], t["org_id"], t["namespace"], t["rpo_seconds"]) for t in report["tenants"]]
    assert rows == [(s["name"], t["org_id"], t["namespace"], t["rpo_seconds"])
                    for s in report["scenarios"] for t in s["tenants"]]
    promises = {c["promise"]: c["status"] for c in report["controls"]}
    assert promises["RTO <= 5m 00s"] == promises["RTO <= 30m 00s"] == "passed"


def test_each_scenarios_section_shows_its_own_figures(drilled):
    report = json.loads((drilled / "report.json").read_text())
    scenarios = {s["name"]: s for s in report["scenarios"]}
    markdown = (drilled / "report.md").read_text()
    html = (drilled / "report.html").read_text()
    md_big = markdown.split(f"## Scenario: {BIG}")[1].split("## Scenario:")[0]
    md_small = markdown.split(f"## Scenario: {SMALL}")[1].split("## Scenario:")[0]
    assert "| 150 | 150 |" in md_big and "| 40 |" not in md_big and "objective 5m 00s: passed" in md_big
    assert "| 40 | 40 |" in md_small and "| 150 |" not in md_small and "objective 30m 00s: passed" in md_small
    html_big = html.split(f"Scenario: {BIG}")[1].split("Scenario: ")[0]
    html_small = html.split(f"Scenario: {SMALL.replace(chr(39), '&#39;')}")[1].split("Scenario: ")[0]
    assert "<td>150</td>" in html_big and "<td>40</td>" not in html_big and "5m 00s" in html_big
    assert "<td>40</td>" in html_small and "<td>150</td>" not in html_small
    from drdrill.core.durations import format_duration
    for name, md, page in ((BIG, md_big, html_big), (SMALL, md_small, html_small)):
        for tenant in scenarios[name]["tenants"]:
            assert format_duration(tenant["rpo_seconds"]) in md and format_duration(tenant["rpo_seconds"]) in page


def test_junit_reports_each_scenario_against_its_own_objectives_and_skips_what_was_not_restored(drilled):
    suite = ET.parse(drilled / "junit.xml").getroot()
    assert suite.get("failures") == "0" and suite.get("errors") == "0"
    cases = {(tc.get("classname"), tc.get("name")): tc for tc in suite.findall("testcase")}
    assert cases[("drdrill.objective", f"{BIG}: RTO <= 5m 00s")].find("skipped") is None
    assert ("drdrill.objective", f"{SMALL}: RTO <= 30m 00s") in cases
    assert ("drdrill.verify", f"{BIG}: org1/ns1/org1-ns1-data-000 document count") in cases
    not_restored = cases[("drdrill.verify", f"{METADATA}: org1/ns1/org1-ns1-data-000 document count")]
    assert not_restored.find("skipped") is not None and not_restored.find("failure") is None
    history = (drilled.parent / "reports" / "history.jsonl").read_text().splitlines()
    summary = json.loads(history[-1])["summary"]
    assert {s["name"]: s["objectives"]["rto_seconds"] for s in summary["scenarios"]}[BIG] == 300.0


def test_cucumber_carries_each_scenarios_own_figures(drilled):
    cucumber = json.loads((drilled / "cucumber.json").read_text())
    described = {e["name"]: e.get("description", "") for f in cucumber for e in f.get("elements", [])}
    assert "150 of 150 documents" in described[BIG] and "40 of 40" not in described[BIG]
    assert "(target 5m 00s)" in described[BIG]
    assert "40 of 40 documents" in described[SMALL] and "150 of 150" not in described[SMALL]
    assert "(target 30m 00s)" in described[SMALL]
