"""The restore test of a live environment (a local stack filled the platform's way, as in
test_live_target) with a Pushgateway and an evidence store: each tenant's exposure on the gateway
is report.json's, the signed pack lands in drdrill's own bucket beside the backups, the report's
promises read the store, and the environment (the backup bucket included) is left as it was.

A module of its own: its staging (tests/integration/conftest.py, one per module) is the one the
platform's job filled, untouched by test_live_target's cases that add tenants to theirs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from drdrill.evidence.keys import generate

from .pushgateway import gauges, run_pushgateway
from .staging import TENANTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    yield from run_pushgateway(tmp_path_factory)


def test_a_restore_test_pushes_its_figures_and_keeps_its_evidence(staging, gateway, tmp_path):
    key, public = generate(tmp_path / "evidence.key")
    config = tmp_path / "drdrill.toml"
    config.write_text(staging.config.read_text() + f'[restore_test]\npushgateway_url = "{gateway}"\n'
                      f'[evidence]\nkey_file = "{key}"\nstore_bucket = "drdrill-evidence"\n'
                      f'[history]\npath = "{tmp_path / "history.jsonl"}"\n')
    before = staging.shape()
    report_dir = tmp_path / "report"
    result = staging.drdrill("run", "--target", "live", "--config", str(config), "--report-dir", str(report_dir),
                             "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["verdict"] == "passed"
    assert staging.shape() == before  # the backup bucket (keys + ETags) included

    found = gauges(gateway, "staging")
    assert found[("drdrill_restore_test_passed", ())] == 1.0
    assert found[("drdrill_restore_test_rto_seconds", ())] == report["achieved"]["rto_seconds"]
    exposures = {labels[0][1]: value for (name, labels), value in found.items()
                 if name == "drdrill_backup_exposure_seconds"}
    assert exposures == {f"{t['org_id']}/{t['namespace']}": t["rpo_seconds"] for t in report["tenants"]}
    assert sorted(exposures) == sorted(TENANTS)

    # The first run with a store: its own promise is evidenced by itself (the store was empty).
    promises = {c["key"]: c for c in report["controls"]}
    assert promises["restore-test"]["status"] == "passed" and "evidence store" in promises["restore-test"]["evidence"]

    listed = staging.drdrill("history", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)["runs"]
    assert (run["drill_id"], run["environment"], run["verdict"]) == (report["drill_id"], "staging", "passed")
    assert run["point"] and run["point"].startswith("newest")
    out = tmp_path / "pack.tar.gz"
    fetched = staging.drdrill("evidence", "fetch", "--config", str(config), report["drill_id"], "--out", str(out))
    assert fetched.returncode == 0, fetched.stderr
    verified = staging.drdrill("evidence", "verify", str(out), "--public-key", str(public))
    assert verified.returncode == 0, verified.stderr
