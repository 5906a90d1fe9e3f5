"""The fault catalogue (features/faults/) on real services: every fault ends in a failed or
errored recovery (never a pass), in the expected phase, with a diagnosis naming the cause;
and backups that existed before the drill are byte-for-byte unchanged afterwards."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from drdrill.adapters.s3 import ObjectStore
from drdrill.core import layout
from drdrill.settings import stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FAULTS = ROOT / "features" / "faults"


def expected_matrix() -> dict[str, tuple[str, str, str | None]]:
    """scenario name -> (kind, phase, diagnosis words), read from the Then steps of the catalogue."""
    matrix: dict[str, tuple[str, str, str | None]] = {}
    for feature in sorted(FAULTS.glob("*.feature")):
        tags = feature.read_text().split("Feature:")[0]
        if "@containers" in tags or "@kubernetes" in tags or "@cluster" in tags:
            # left out on the local target's one node (test_containers_faults.py, test_kubernetes.py,
            # test_es_cluster.py)
            continue
        name = None
        for line in feature.read_text().splitlines():
            line = line.strip()
            if line.startswith("Scenario:"):
                name = line.removeprefix("Scenario:").strip()
            elif name and (m := re.match(r'Then the (recovery fails|drill errors) in phase "([^"]+)"', line)):
                matrix[name] = ("failed" if m.group(1) == "recovery fails" else "error", m.group(2), None)
            elif name and (m := re.match(r'And the diagnosis names "([^"]+)"', line)):
                kind, phase, _ = matrix[name]
                matrix[name] = (kind, phase, m.group(1))
    return matrix


def _digests(store: ObjectStore) -> dict[str, str]:
    return {o.key: hashlib.sha256(store.get_bytes(o.key)).hexdigest() for o in store.list("")}


@pytest.fixture(scope="module")
def fault_run(paths, tmp_path_factory):
    """One run of the whole catalogue on a stack whose store already holds someone else's
    backups (a platform-named dump and a drdrill backup of another tenant)."""
    stack = LocalStack(paths, stack_settings_from_env(), stack_name=f"pytest-faults-{uuid.uuid4().hex[:6]}")
    ep = stack.up()
    try:
        store = ObjectStore(ep.s3_endpoint, ep.s3_access_key, ep.s3_secret_key, ep.bucket)
        store.ensure_bucket()
        foreign = "metadata/legacy/metadata_backup_legacy_20261101_020000.sql.enc"
        store.put_bytes(foreign, b"Salted__" + bytes(range(8)) + b"\x00" * 64)
        store.put_bytes("legacy/prod/index.latest", (0).to_bytes(8, "big"))
        store.put_bytes("legacy/prod/index-0", b'{"snapshots": [], "indices": {}}')
        store.put_bytes(layout.checksum_key(foreign), layout.checksum_record("a" * 64, foreign).encode())
        before = _digests(store)
        stacks_before = set(paths.stacks_dir.iterdir())
        report_dir = tmp_path_factory.mktemp("faults") / "report"
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "drdrill", "-q", "run", str(FAULTS), "--stack", stack.stack_name,
             "--report-dir", str(report_dir), "--project-dir", str(report_dir.parent)], cwd=ROOT,
            capture_output=True, text=True, timeout=1800)
        elapsed = time.monotonic() - started
        after = _digests(store)
        new_stacks = set(paths.stacks_dir.iterdir()) - stacks_before
        report = json.loads((report_dir / "report.json").read_text())
        yield {"result": result, "report": report, "before": before, "after": after, "elapsed": elapsed,
               "new_stacks": new_stacks, "report_dir": report_dir}
    finally:
        stack.down(purge=True)


def test_the_catalogue_has_at_least_20_faults():
    assert len(expected_matrix()) >= 20


def test_a_healthy_catalogue_is_a_passing_gate(fault_run):
    """Every fault failed the recovery exactly as its scenario said (phase and diagnosis): the
    run passes, like a strict xfail, and each scenario says "expected failure, diagnosed"."""
    result, report = fault_run["result"], fault_run["report"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["verdict"] == "passed", report["verdict_reasons"]
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == set(expected_matrix())
    for name, scenario in scenarios.items():
        assert scenario["expected_failure"] and scenario["verdict"] == "passed", name
        assert scenario["verdict_reasons"] == ["expected failure, diagnosed"], name


def _problems(report: dict, scenario: str) -> list[dict]:
    return [p for p in report["problems"] if (p.get("evidence") or {}).get("scenario") == scenario]


def _diagnosis_text(problem: dict) -> str:
    probe = (problem.get("evidence") or {}).get("failed_probe") or {}
    return " ".join(filter(None, [problem.get("diagnosis"), probe.get("check"), probe.get("result")])).lower()


@pytest.mark.parametrize("scenario", sorted(expected_matrix()))
def test_fault_is_diagnosed_in_its_phase(fault_run, scenario):
    kind, phase, words = expected_matrix()[scenario]
    report = fault_run["report"]
    status = {s["name"]: s for s in report["scenarios"]}[scenario]
    failed_steps = [(s["text"], s["error"]) for s in status["steps"] if s["status"] in ("failed", "undefined")]
    assert status["status"] == "passed", failed_steps
    matching = [p for p in _problems(report, scenario) if p["kind"] == kind and p["phase"] == phase]
    assert matching, _problems(report, scenario)
    assert words, f"{scenario}: every fault scenario asserts its diagnosis"
    # The diagnosis itself (and the probe that proved it), not the error message.
    assert any(words.lower() in _diagnosis_text(p) for p in matching), matching


def test_steps_after_the_expected_failure_are_skipped_in_every_format(fault_run):
    """Steps the drill did not carry out are "skipped" in report.json, junit.xml and
    cucumber.json: never "passed"."""
    import xml.etree.ElementTree as ET

    report, report_dir = fault_run["report"], fault_run["report_dir"]
    scenarios = {s["name"]: s for s in report["scenarios"]}
    # The failure is this scenario's last action: nothing after it to skip.
    assert "skipped" not in [s["status"] for s in scenarios["MinIO is down during the nightly backup"]["steps"]]
    # MinIO is down when the metadata is restored: the runbook's next steps are skipped, not passed.
    name = "MinIO is down when the metadata is restored"
    assert [s["text"] for s in scenarios[name]["steps"] if s["status"] == "skipped"] == [
        "And every tenant's snapshot is restored from MinIO", "And data integrity is verified"]

    junit = ET.parse(report_dir / "junit.xml").getroot()
    cases = {tc.get("name"): tc for tc in junit.iter("testcase") if tc.get("classname") == f"drdrill.step.{name}"}
    assert cases["And every tenant's snapshot is restored from MinIO"].find("skipped") is not None
    assert cases["When MinIO goes down"].find("skipped") is None

    cucumber = json.loads((report_dir / "cucumber.json").read_text())
    elements = {e["name"]: e for f in cucumber for e in f["elements"]}
    steps = {s["name"]: s["result"]["status"] for s in elements[name]["steps"]}
    assert steps["every tenant's snapshot is restored from MinIO"] == "skipped"
    assert steps["MinIO goes down"] == "passed"


def test_a_fault_diagnosed_otherwise_fails_the_gate(session_stack, tmp_path):
    """The catalogue is a gate: a fault whose diagnosis no longer matches fails the run (exit 1)."""
    feature = tmp_path / "altered.feature"
    feature.write_text((FAULTS / "backup_job.feature").read_text().split("  Scenario: PostgreSQL hangs")[0]
                       .replace('the diagnosis names "MinIO"', 'the diagnosis names "PostgreSQL password"'))
    result = subprocess.run(
        [sys.executable, "-m", "drdrill", "-q", "run", str(feature), "--stack", session_stack.stack_name,
         "--report-dir", str(tmp_path / "report"), "--project-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-2000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    [scenario] = report["scenarios"]
    assert scenario["verdict"] == "failed" and "not in the expected phase" in scenario["verdict_reasons"][0]


def test_backups_that_existed_before_are_unchanged(fault_run):
    before, after = fault_run["before"], fault_run["after"]
    assert before, "the test planted foreign backups"
    assert {k: after.get(k) for k in before} == before
    assert not any("existed before the drill changed" in p["summary"] for p in fault_run["report"]["problems"])


def test_the_run_used_the_given_stack_and_left_no_other(fault_run):
    # It drilled on the fixture's stack: no stack of its own was started or left behind.
    assert {p for p in fault_run["new_stacks"] if p.name.startswith("drill-")} == set()
    assert fault_run["report"]["target"] == "local"
