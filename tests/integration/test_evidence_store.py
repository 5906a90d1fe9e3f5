"""Metrics and evidence that age, on the real local stack and a real Pushgateway: three drills of
one project on the session stack (two pass, the third misses its RTO) push their figures to a
Pushgateway started here and keep their signed packs in an evidence bucket of the stack's MinIO;
the gateway's figures are report.json's, the last success survives the failed run, `history
--config` lists the runs newest first, a fetched pack verifies, and the backup bucket is untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from drdrill.adapters.platform import Endpoints
from drdrill.adapters.s3 import ObjectStore
from drdrill.core.clock import from_iso
from drdrill.core.ownership import EvidenceBucketOnly, RefusedWrite
from drdrill.evidence.keys import generate

from .pushgateway import free_port, gauges, run_pushgateway

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FEATURE = ROOT / "features" / "metadata_recovery.feature"


def _drdrill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, check=False)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[str]:
    yield from run_pushgateway(tmp_path_factory)


def _listing(store: ObjectStore) -> dict[str, str]:
    return {o.key: o.etag for o in store.list("")}


@pytest.fixture(scope="module")
def backups(endpoints: Endpoints) -> ObjectStore:
    return ObjectStore(endpoints.s3_endpoint, endpoints.s3_access_key, endpoints.s3_secret_key, endpoints.bucket)


@pytest.fixture(scope="module")
def project(tmp_path_factory, session_stack, gateway, backups) -> dict:
    root = tmp_path_factory.mktemp("store-project")
    key, public = generate(root / "evidence.key")
    bucket = f"drdrill-evidence-{root.name.lower().replace('_', '-')[-20:].strip('-')}"
    (root / "drdrill.toml").write_text(
        f'[evidence]\nkey_file = "{key}"\nstore_bucket = "{bucket}"\n'
        f'[restore_test]\npushgateway_url = "{gateway}"\n[history]\npath = "audit/history.jsonl"\n')
    before = _listing(backups)
    reports = []
    for n, extra in enumerate(([], [], ["--rto", "1ms"])):  # the third misses its RTO: failed, exit 1
        report_dir = root / "reports" / str(n)
        result = _drdrill("run", str(FEATURE), "--stack", session_stack.stack_name, "--report-dir", str(report_dir),
                          "--project-dir", str(root), *extra, cwd=root)
        assert result.returncode == (1 if extra else 0), result.stdout + result.stderr
        reports.append(json.loads((report_dir / "report.json").read_text()))
    return {"root": root, "public": public, "bucket": bucket, "reports": reports, "before": before,
            "after": _listing(backups), "environment": f"local-{session_stack.stack_name}",
            "stack": session_stack.stack_name, "store": backups}


def test_the_gateway_holds_report_json_figures_and_keeps_the_last_success(project, gateway):
    passed, failed = project["reports"][1], project["reports"][2]
    assert (passed["verdict"], failed["verdict"]) == ("passed", "failed")
    found = gauges(gateway, project["environment"])
    # The newest run's own group is the failed one's; the last success is the second run's.
    assert found[("drdrill_restore_test_passed", ())] == 0.0
    assert found[("drdrill_restore_test_rto_seconds", ())] == failed["achieved"]["rto_seconds"]
    assert found[("drdrill_restore_test_rto_objective_seconds", ())] == failed["objectives"]["rto_seconds"] == 0.001
    assert found[("drdrill_rpo_objective_seconds", ())] == failed["objectives"]["rpo_seconds"]
    assert found[("drdrill_backup_exposure_seconds", (("tenant", "(all)"),))] == \
        failed["achieved"]["backup_exposure_seconds"]
    assert found[("drdrill_restore_test_last_success_timestamp_seconds", (("series", "last_success"),))] == \
        from_iso(passed["finished_at"]).timestamp()


def test_history_lists_the_stored_runs_newest_first(project):
    listed = _drdrill("history", "--config", "drdrill.toml", "--stack", project["stack"], "--json", cwd=project["root"])
    assert listed.returncode == 0, listed.stdout + listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    reports = list(reversed(project["reports"]))
    assert [r["drill_id"] for r in runs] == [r["drill_id"] for r in reports]
    assert [r["verdict"] for r in runs] == ["failed", "passed", "passed"]
    assert [r["rto_seconds"] for r in runs] == [r["achieved"]["rto_seconds"] for r in reports]
    assert all(r["environment"] == project["environment"] and r["pack"] and not r["problem"] for r in runs)
    table = _drdrill("history", "--config", "drdrill.toml", "--stack", project["stack"], cwd=project["root"])
    assert table.returncode == 0 and "3 run(s) in s3://" in table.stdout
    assert table.stdout.index(reports[0]["drill_id"]) < table.stdout.index(reports[2]["drill_id"])


def test_a_fetched_pack_verifies_with_the_public_key(project, tmp_path):
    drill = project["reports"][1]["drill_id"]
    out = tmp_path / "pack.tar.gz"
    fetched = _drdrill("evidence", "fetch", "--config", "drdrill.toml", "--stack", project["stack"], drill,
                       "--out", str(out), cwd=project["root"])
    assert fetched.returncode == 0, fetched.stderr
    verified = _drdrill("evidence", "verify", str(out), "--public-key", str(project["public"]), "--json",
                        cwd=project["root"])
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["drill_id"] == drill
    unknown = tmp_path / "unknown.tar.gz"
    missing = _drdrill("evidence", "fetch", "--config", "drdrill.toml", "--stack", project["stack"],
                       "20200101T000000Z-abcdef", "--out", str(unknown), cwd=project["root"])
    assert missing.returncode == 2 and "no pack of drill" in missing.stderr and "hint:" in missing.stderr
    assert not unknown.exists() and not list(tmp_path.glob(".unknown*"))
    bad = _drdrill("evidence", "fetch", "--config", "drdrill.toml", "--stack", project["stack"], "../x",
                   "--out", str(unknown), cwd=project["root"])
    assert bad.returncode == 2 and "not a drill id" in bad.stderr and not unknown.exists()


def test_the_backup_bucket_is_untouched(project):
    before, after = project["before"], project["after"]
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that existed was altered
    assert not [k for k in after if k.startswith("runs/") or k.endswith(("pack.tar.gz", "report.json"))]
    assert after == before, sorted(set(after) ^ set(before))[:10]


def test_the_store_client_cannot_write_into_the_backup_bucket(project):
    store = project["store"].for_bucket(project["store"].bucket, EvidenceBucketOnly(project["bucket"], "local"))
    with pytest.raises(RefusedWrite):
        store.put_bytes("runs/x/20261202T000000Z_20261202T000000Z-abcdef/report.json", b"{}")
    assert not store.exists("runs/x/20261202T000000Z_20261202T000000Z-abcdef/report.json")


def test_a_malformed_object_in_the_store_is_reported_not_a_crash(project):
    store = project["store"].for_bucket(project["bucket"], EvidenceBucketOnly(project["bucket"], "local"))
    store.put_bytes("runs/planted/20200101T000000Z_20200101T000000Z-abcdef/report.json", b"\x00 not a report")
    store.put_bytes("runs/planted/not-a-run/report.json", b"{}")  # outside the layout: not listed at all
    listed = _drdrill("history", "--config", "drdrill.toml", "--stack", project["stack"], "--json",
                      cwd=project["root"])
    assert listed.returncode == 1, listed.stderr
    runs = json.loads(listed.stdout)["runs"]
    assert len(runs) == 4 and runs[-1]["verdict"] == "malformed" and "not JSON" in runs[-1]["problem"]


def test_a_push_that_fails_is_a_harness_error(tmp_path, session_stack):
    key, _public = generate(tmp_path / "evidence.key")
    port = free_port()  # nothing listens there
    (tmp_path / "drdrill.toml").write_text(f'[evidence]\nkey_file = "{key}"\n'
                                           f'[restore_test]\npushgateway_url = "http://127.0.0.1:{port}"\n')
    report_dir = tmp_path / "report"
    result = _drdrill("run", str(FEATURE), "--stack", session_stack.stack_name, "--report-dir", str(report_dir),
                      "--project-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"127.0.0.1:{port} failed" in result.stderr and "Connection refused" in result.stderr
    assert json.loads((report_dir / "report.json").read_text())["verdict"] == "passed"  # the drill itself is kept


def test_a_store_on_a_throwaway_stack_is_refused_before_anything_runs(tmp_path):
    key, _public = generate(tmp_path / "evidence.key")
    (tmp_path / "drdrill.toml").write_text(f'[evidence]\nkey_file = "{key}"\nstore_bucket = "drdrill-evidence"\n')
    result = _drdrill("run", str(FEATURE), "--project-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "outlives the run" in result.stderr
    assert not (tmp_path / "reports").exists()
