"""A drill that is interrupted (SIGTERM, as CI does on cancel) still writes a report marked
incomplete and stops every process it started."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from drdrill.host import process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _records(stack_dir: Path) -> list[process.ProcessRecord]:
    state = stack_dir / "stack.json"
    if not state.exists():
        return []
    return [process.ProcessRecord.from_dict(p) for p in json.loads(state.read_text()).get("processes", [])]


def test_sigterm_mid_drill_writes_an_incomplete_report_and_leaves_nothing_running(tmp_path, paths):
    report_dir = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "drdrill", "run", "features/full_site_recovery.feature", "--report-dir",
         str(report_dir), "--project-dir", str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    records: list[process.ProcessRecord] = []
    try:
        deadline = time.monotonic() + 300
        assert proc.stderr is not None
        for line in proc.stderr:
            if "the nightly backup has run" in line:
                break
            assert time.monotonic() < deadline, "the drill never reached its backup step"
        stacks = sorted(paths.stacks_dir.glob("drill-*"), key=lambda p: p.stat().st_mtime)
        assert stacks, "the drill's stack work dir was not found"
        records = _records(stacks[-1])
        assert records and all(process.members(r) for r in records)
        proc.send_signal(signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, stdout
    report = json.loads((report_dir / "report.json").read_text())
    assert report["incomplete"] is True and report["verdict"] == "error"
    assert any("interrupted" in p["summary"] for p in report["problems"])
    assert "INCOMPLETE" in stdout.upper() or "ERROR" in stdout
    # Every process of every service's group, the Elasticsearch server JVM included.
    alive = [p.pid for r in records for p in process.members(r)]
    assert alive == [], f"processes left running: {alive}"
