"""drdrill as a team installs it: the built wheel in a fresh virtualenv outside the repository,
`drdrill init` in an empty directory, a team's own step next to drdrill's, and a drill that
passes on the local target. Also: the plan of a run is shown without starting anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

TEAM_STEP = '''
from pytest_bdd import given

from drdrill.core.layout import Tenant


@given("our billing tenant is drilled")
def billing_tenant(drill):
    drill.settings.tenants = [Tenant("billing", "prod")]
'''

TEAM_FEATURE = '''@destructive
Feature: Our own drill
  Scenario: The billing tenant comes back
    Given our billing tenant is drilled
    And the platform holds the configured tenants
    And the nightly backup has run
    When the metadata database is lost
    And PostgreSQL is redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And metadata integrity is verified
    Then the tenant_containers rows match the backup
    And the recovery time is within the objective
'''


def _run(argv: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900):
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_the_wheel_installs_and_drills_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    checkout_before = sorted(p.name for p in ROOT.iterdir())
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)], tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    # README's promise: building from a checkout leaves it as it was (no build/, no egg-info).
    assert sorted(p.name for p in ROOT.iterdir()) == checkout_before
    [wheel] = dist.glob("drdrill-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = env_dir / "bin" / "pip"
    installed = _run([str(pip), "install", "--quiet", f"{wheel}[local]"], tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    drdrill = str(env_dir / "bin" / "drdrill")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    version = _run([drdrill, "--version"], tmp_path, env)
    assert version.returncode == 0 and version.stdout.strip().startswith("drdrill ")

    project = tmp_path / "team"
    init = _run([drdrill, "init", str(project)], tmp_path, env)
    assert init.returncode == 0, init.stderr
    assert (project / "drdrill.toml").exists() and (project / "features" / "full_site_recovery.feature").exists()
    assert (project / "features" / "faults").is_dir()
    (project / "steps" / "team_steps.py").write_text(TEAM_STEP)
    (project / "features" / "ours.feature").write_text(TEAM_FEATURE)

    steps = _run([drdrill, "steps"], project, env)
    assert "our billing tenant is drilled" in steps.stdout and "the nightly backup has run" in steps.stdout

    drill = _run([drdrill, "-q", "run", "features/ours.feature", "--report-dir", "reports/ours"], project, env)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    report = json.loads((project / "reports" / "ours" / "report.json").read_text())
    assert report["verdict"] == "passed" and [t["org_id"] for t in report["tenants"]] == ["billing"]


def test_dry_run_prints_the_plan_and_starts_nothing(tmp_path):
    # Its own state directory: other drills on this machine may start stacks meanwhile.
    state = tmp_path / "state"
    env = {**os.environ, "DRDRILL_STATE_DIR": str(state)}
    report_dir = tmp_path / "report"
    result = _run([sys.executable, "-m", "drdrill", "run", "--dry-run", "--report-dir", str(report_dir),
                   "--rto", "10m"], ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nothing has been started or touched" in result.stdout
    for words in ("target      local", "RTO 10m 00s", "Scenario: Recover every tenant after losing the site",
                  "When the site is lost", "tenants     org1/ns1"):
        assert words in result.stdout
    assert "features/faults" not in result.stdout  # the catalogue is not a default drill
    as_json = _run([sys.executable, "-m", "drdrill", "validate", "--json", "--target", "local"], ROOT, env=env,
                   timeout=120)
    plan = json.loads(as_json.stdout)
    assert plan["objectives"]["rto_seconds"] == 1800 and plan["features"]
    assert not report_dir.exists()
    assert not (state / "stacks").exists() or not any((state / "stacks").iterdir())
    assert not [p.pid for p in psutil.process_iter(["cmdline"]) if str(state) in " ".join(p.info["cmdline"] or [])]


def test_dry_run_still_refuses_bad_input(tmp_path):
    bad = tmp_path / "typo.feature"
    bad.write_text("Feature: x\n  Scenario: y\n    When MinIO goes dwn\n")
    result = _run([sys.executable, "-m", "drdrill", "run", "--dry-run", str(bad)], ROOT, timeout=120)
    assert result.returncode == 2 and "no step definition matches" in result.stderr
