"""One history per project, verified before every append and signed; the third drill's report
shows the two before it (checked in a real headless Chromium); the report prints to PDF."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drdrill.adapters.browser import dump_dom
from drdrill.evidence.keys import generate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FEATURE = ROOT / "features" / "metadata_recovery.feature"


def _drdrill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory, session_stack) -> dict[str, Path]:
    """Three drills of one project on the session stack, each with a report directory of its
    own choosing, one history, signed with the project's evidence key."""
    root = tmp_path_factory.mktemp("project")
    key, public = generate(root / "evidence.key")
    (root / "drdrill.toml").write_text(f'[evidence]\nkey_file = "{key}"\n[history]\npath = "audit/history.jsonl"\n')
    dirs = {}
    for n in range(3):
        report_dir = root / f"elsewhere-{n}" / "report"
        result = _drdrill("run", str(FEATURE), "--stack", session_stack.stack_name, "--report-dir", str(report_dir),
                          "--project-dir", str(root), cwd=root)
        assert result.returncode == 0, result.stdout + result.stderr
        dirs[f"drill{n}"] = report_dir
    return {"root": root, "public": public, "history": root / "audit" / "history.jsonl", **dirs}


def test_custom_report_dirs_share_the_projects_one_signed_history(project):
    lines = project["history"].read_text().splitlines()
    assert len(lines) == 3
    assert not any((project[f"drill{n}"].parent / "history.jsonl").exists() for n in range(3))
    entry = json.loads(lines[-1])
    assert entry["signature"] and entry["key_fingerprint"].startswith("sha256:")
    assert set(entry["files"]) >= {"report.json", "report.html", "junit.xml", "drill.log", "settings.json",
                                   "features/metadata_recovery.feature"}
    listed = _drdrill("history", "--public-key", str(project["public"]), cwd=project["root"])
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "chain of 3 drill(s): intact" in listed.stdout and "(unsigned)" not in listed.stdout


def test_an_evidence_pack_of_a_drill_verifies(project, tmp_path):
    out = tmp_path / "drill1.tar.gz"
    packed = _drdrill("evidence", "pack", str(project["drill1"]), "--key-file", str(project["root"] / "evidence.key"),
                      "--out", str(out), cwd=project["root"])
    assert packed.returncode == 0, packed.stderr
    verified = _drdrill("evidence", "verify", str(out), "--public-key", str(project["public"]), cwd=project["root"])
    assert verified.returncode == 0 and "intact" in verified.stdout
    other = tmp_path / "other.key"
    generate(other)
    refused = _drdrill("evidence", "verify", str(out), "--public-key", f"{other}.pub", cwd=project["root"])
    assert refused.returncode == 1 and "signed with key" in refused.stderr


def test_the_third_report_shows_the_two_before_it_in_a_browser(project):
    report = json.loads((project["drill2"] / "report.json").read_text())
    earlier = [json.loads((project[f"drill{n}"] / "report.json").read_text())["drill_id"] for n in range(2)]
    assert [p["drill_id"] for p in report["trend"]] == earlier
    dom = dump_dom(project["drill2"] / "report.html")  # what the browser built, offline
    chart = dom[dom.index('id="trend-chart"'):]
    chart = chart[: chart.index("</svg>")]
    assert all(f'data-drill="{drill}"' in chart for drill in [*earlier, report["drill_id"]])
    assert chart.count('class="trend-rto') >= 3 and chart.count('class="trend-rpo') >= 3
    assert 'id="controls"' in dom and "drilled once a quarter" in dom


def test_a_tampered_history_refuses_the_next_drill_and_writes_nothing(project, session_stack):
    history = project["history"]
    original = history.read_text()
    lines = original.splitlines()
    first = json.loads(lines[0])
    first["verdict"] = "failed"  # rewriting the past
    history.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    try:
        report_dir = project["root"] / "after-tamper"
        result = _drdrill("run", str(FEATURE), "--stack", session_stack.stack_name, "--report-dir", str(report_dir),
                          "--project-dir", str(project["root"]), cwd=project["root"])
        assert result.returncode == 2 and "does not verify" in result.stderr
        assert not report_dir.exists()
    finally:
        history.write_text(original)


def test_the_report_prints_to_a_pdf_whose_first_page_is_not_blank(project, tmp_path):
    result = _drdrill("report", str(project["drill0"]), "--pdf", cwd=project["root"])
    assert result.returncode == 0, result.stderr
    pdf = project["drill0"] / "report.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "40", "-gray", str(pdf), str(tmp_path / "page")],
                   check=True)
    [page] = tmp_path.glob("page*.pgm")
    data = page.read_bytes()
    # P5 header: magic, width height, maxval; then one byte per pixel.
    header = data.split(b"\n", 3)
    width, height = (int(v) for v in header[1].split())
    pixels = header[3][: width * height]
    dark = sum(1 for value in pixels if value < 128)
    assert dark > width * height * 0.005, "page 1 is blank"
