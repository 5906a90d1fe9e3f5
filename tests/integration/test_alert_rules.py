"""The shipped alert rules (deploy/prometheus/) pass `promtool check rules` and their own unit
tests (`promtool test rules`). promtool is Debian's `prometheus` package, which `make tools`
installs; without it the test says so and skips."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed: `make tools` installs Debian's prometheus package, which has it")
    return found


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=120, check=False)


def test_the_rules_are_valid(promtool):
    checked = _promtool(promtool, "check", "rules", "drdrill-rules.yaml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    print(checked.stdout)  # the closing note quotes it


def test_the_rules_fire_when_they_should(promtool):
    tested = _promtool(promtool, "test", "rules", "tests.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    print(tested.stdout)


def test_the_rules_are_installed_with_drdrill():
    from importlib.resources import files

    assert files("drdrill.deploy").joinpath("prometheus/drdrill-rules.yaml").is_file()
