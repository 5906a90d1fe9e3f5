"""The faults only containers can make (features/faults/containers.feature), for real, on
`--target containers`: each ends in a failed recovery in its phase with a diagnosis naming the
cause (the store, the OOM killer, the full disk), and each is healed for the next scenario."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from drdrill.adapters.docker_engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.containers]

ROOT = Path(__file__).resolve().parents[2]
FEATURE = ROOT / "features" / "faults" / "containers.feature"


@pytest.fixture(scope="module")
def catalogue(paths, tmp_path_factory):
    engine = DockerEngine(paths.state_dir, paths.cache_dir)
    engine.ensure()
    try:
        before = engine.labelled()
        report_dir = tmp_path_factory.mktemp("container-faults") / "report"
        result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", str(FEATURE), "--target", "containers",
                                 "--report-dir", str(report_dir), "--project-dir", str(report_dir.parent)],
                                cwd=ROOT, capture_output=True, text=True, timeout=1800, env=dict(os.environ))
        yield {"result": result, "report": json.loads((report_dir / "report.json").read_text()),
               "left": engine.labelled(), "before": before}
    finally:
        engine.stop()


def _diagnoses(report: dict, scenario: str) -> str:
    found = [p for p in report["problems"] if (p.get("evidence") or {}).get("scenario") == scenario]
    assert found, f"no problem recorded for {scenario}"
    return " ".join(json.dumps(p) for p in found)


def test_every_container_fault_fails_the_recovery_as_its_scenario_says(catalogue):
    result, report = catalogue["result"], catalogue["report"]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert len(report["scenarios"]) == 5
    for scenario in report["scenarios"]:
        assert scenario["verdict_reasons"] == ["expected failure, diagnosed"], scenario["name"]
    assert catalogue["left"] == catalogue["before"]  # nothing labelled by drdrill left behind


def test_the_oom_kill_is_the_kernels_and_is_named(catalogue):
    text = _diagnoses(catalogue["report"], "Elasticsearch is OOM-killed as the restore begins")
    assert "killed by the kernel's OOM killer (memory limit" in text


def test_the_full_disk_is_a_real_filesystem_with_no_space_left(catalogue):
    text = _diagnoses(catalogue["report"], "The data disk of Elasticsearch is really full")
    assert "Elasticsearch data disk has free space (df)" in text and "the disk is full" in text
    assert "100% used" in text


def test_a_cut_or_resetting_store_is_named_with_the_check_that_proved_it(catalogue):
    report = catalogue["report"]
    for scenario in ("The object store is cut off from the network during the nightly backup",
                     "The object store is cut off from the network during the restore",
                     "The object store resets every connection"):
        text = _diagnoses(report, scenario)
        assert "MinIO health" in text, scenario


def test_a_slow_store_still_recovers_and_is_named_the_bottleneck(paths, tmp_path):
    engine = DockerEngine(paths.state_dir, paths.cache_dir)
    engine.ensure()
    try:
        report_dir = tmp_path / "report"
        feature = FEATURE.with_name("slow_store.feature")
        result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", str(feature), "--target", "containers",
                                 "--report-dir", str(report_dir), "--project-dir", str(tmp_path)], cwd=ROOT,
                                capture_output=True, text=True, timeout=1200, env=dict(os.environ))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        report = json.loads((report_dir / "report.json").read_text())
        assert report["verdict"] == "passed" and report["achieved"]["rto_seconds"] > 0
        bottleneck = [w for w in report["weaknesses"] if "object store was the bottleneck" in w["summary"]]
        assert bottleneck, report["weaknesses"]
        assert "fetching the snapshots took" in bottleneck[0]["summary"]
    finally:
        engine.stop()
