"""`drdrill run` end to end on real services: each scenario, the exit statuses, the report
files, and that report.json agrees with what the services hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from drdrill.core.history import verify_chain
from drdrill.settings import DEFAULT_ES_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def drill(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    report_dir = tmp_path / "report"
    # The project directory is the test's own: its history and reports stay out of the repository.
    result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", *args, "--report-dir", str(report_dir),
                             "--project-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    return result, report_dir


@pytest.mark.es_matrix
def test_full_site_drill_passes_with_measured_rto_and_rpo(tmp_path):
    result, report_dir = drill(tmp_path, f"{ROOT}/features/full_site_recovery.feature")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout and str(report_dir) in result.stdout
    names = {p.name for p in report_dir.iterdir()}
    assert {"report.json", "report.md", "report.html", "junit.xml", "cucumber.json"} <= names
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "passed"
    achieved = report["achieved"]
    assert 0 < achieved["rto_seconds"] <= report["objectives"]["rto_seconds"]
    # Canaries were written after the backup: real data was lost, and measured.
    assert achieved["rpo_seconds"] > 0
    assert achieved["backup_exposure_seconds"] >= achieved["rpo_seconds"] - 1
    assert len(report["tenants"]) == 3
    for tenant in report["tenants"]:
        assert tenant["indices"] and all(i["docs_expected"] == i["docs_restored"] == 1000
                                         for i in tenant["indices"])
        assert tenant["rpo_seconds"] > 0
    phases = [p["name"] for p in report["phases"]]
    for name in ("backup", "disaster", "deploy-services", "restore-metadata", "restore-snapshots", "verify"):
        assert name in phases
    assert all(p["status"] == "passed" for p in report["phases"])
    assert report["evidence"]["snapshots"] and report["evidence"]["objects"]
    # The versions under drill: the server's (the stack's choice, 8.x in make test's second
    # pass), the client's, and how they talk.
    versions = report["evidence"]["versions"]
    expected = os.environ.get("DRDRILL_ES_VERSION") or DEFAULT_ES_VERSION
    assert versions["elasticsearch"] == expected
    assert versions["elasticsearch-py"].startswith("8.")
    assert versions["elasticsearch_api"] == ("native" if expected.startswith("8.") else
                                             "REST API compatibility with 8.x")
    assert all(len(o["sha256"]) == 64 for o in report["evidence"]["objects"])
    assert any("EVP_BytesToKey" in w["summary"] for w in report["weaknesses"])
    html = (report_dir / "report.html").read_text()
    assert "<svg" in html and "http://" not in html and "https://" not in html
    ET.parse(report_dir / "junit.xml")
    history = (tmp_path / "reports" / "history.jsonl").read_text().splitlines()
    assert verify_chain(history, {report["drill_id"]: (report_dir / "report.json").read_bytes()}) == []
    assert (report_dir / "drill.log").exists() and not (report_dir / "logs").exists()  # passed: no service logs
    text = (report_dir / "report.json").read_text()
    assert "postgresql://" not in text and "secret_key" not in text
    # Tenant isolation on the real MinIO: each tenant's own credentials were refused the others'
    # paths and metadata/, and the runbook's promise says so.
    refused = [c for c in report["evidence"]["notes"]["checks"] if "is refused tenant" in c["name"]]
    assert len(refused) == 3 * 2 and all(c["passed"] and c["detail"] == "AccessDenied" for c in refused)
    controls = {c["promise"]: c for c in report["controls"]}
    isolation = next(c for promise, c in controls.items() if "isolat" in promise)
    assert isolation["status"] == "passed", isolation


def test_rto_target_below_achieved_fails_with_exit_1_and_says_why(tmp_path):
    result, report_dir = drill(tmp_path, f"{ROOT}/features/metadata_recovery.feature", "--rto", "1ms")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED" in result.stdout and "RTO" in result.stdout and "exceeds target" in result.stdout
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "failed"
    assert report["objectives"]["rto_seconds"] == 0.001
    assert any("RTO" in reason for reason in report["verdict_reasons"])
    junit = ET.parse(report_dir / "junit.xml").getroot()
    assert any(True for _ in junit.iter("failure"))
    # A failed drill keeps what explains it: the drill's log and the services' last log lines,
    # read before the stack was removed.
    assert "restored metadata" in (report_dir / "drill.log").read_text()
    assert {p.name for p in (report_dir / "logs").iterdir()} == {"elasticsearch.log", "minio.log", "postgres.log"}
    for service in ("elasticsearch", "postgres"):  # MinIO runs --quiet: its banner would show its keys
        assert (report_dir / "logs" / f"{service}.log").stat().st_size > 0, service


def test_one_tenant_and_custom_objective_scenarios(tmp_path):
    result, report_dir = drill(tmp_path, f"{ROOT}/features/single_tenant_recovery.feature",
                               f"{ROOT}/features/custom_objectives.feature")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert [s["status"] for s in report["scenarios"]] == ["passed", "passed"]
    checks = {c["name"]: c["passed"] for c in report["evidence"]["notes"]["checks"]}
    assert checks["tenant acme/staging untouched"] and checks["tenant globex/prod untouched"]
    cucumber = json.loads((report_dir / "cucumber.json").read_text())
    assert len(cucumber) == 2
    # The custom scenario restored two tenants side by side after raising the throttle.
    restore = next(r for r in report["evidence"]["notes"]["restore"] if r["scenario"].startswith("Full-site"))
    assert restore["concurrency"] == 2
    assert restore["indices.recovery.max_bytes_per_sec"] == "200mb"
    assert restore["indices.recovery.max_bytes_per_sec changed"].endswith("-> 200mb (set by the scenario)")


def test_a_week_of_simulated_nights_proves_retention_and_the_newest_restores(tmp_path):
    result, report_dir = drill(tmp_path, f"{ROOT}/features/retention.feature")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    notes = report["evidence"]["notes"]
    # 9 nights x (2 snapshots + the dumps of all and org1): the 2 oldest nights went.
    assert notes["retention_deleted"] == 2 * 4
    assert notes["retention"] == {"days": 7, "simulated_nights": 9, "tenants_missing_days": {},
                                  "older_than_policy": {}}
    kept = [c for c in notes["checks"] if "on each of the last 7 days" in c["name"]]
    assert {c["name"].split(" has ")[0] for c in kept} == {"tenant org1/ns1", "tenant org1/ns2", "metadata/all",
                                                           "metadata/org1"}
    assert all(c["passed"] for c in notes["checks"])
    retention = next(c for c in report["controls"] if c["promise"].startswith("retention"))
    assert retention["status"] == "passed" and "9 nights simulated" in retention["evidence"]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.feature"
    bad.write_text("Feature: x\n  Scenario: y\n    Given a unicorn grazes\n")
    cases = (["features/none.feature"], [str(bad)], ["features", "--rto", "soon"], ["features", "--target", "mars"])
    for args in cases:
        result, report_dir = drill(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert not report_dir.exists()
