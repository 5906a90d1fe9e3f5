"""`--target live` on an environment that is not a drill environment: safe by construction.

Each case is one of the hazards found on a staging stack filled the platform's way: destructive
steps (refused at plan time, and refused by the target itself when a team's own step goes around
the declaration), a scratch database that is the platform's own, a busy platform, a tenant
without a backup, a run killed mid-restore, two runs at once, hostile names and keys in the
bucket, and a restore that would cross the disk watermark. Every case checks that staging is
left as it was found.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from drdrill.adapters.pg_owned import LOCK_KEYS

from .staging import ROOT, TENANTS, Staging

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PLATFORM_DB_TABLE = "tenant_containers"


def _feature(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "features" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _step_lines(feature: Path) -> dict[int, str]:
    return {n: line.strip() for n, line in enumerate(feature.read_text().splitlines(), start=1)
            if re.match(r"\s*(Given|When|Then|And|But) ", line)}


# --- destructive steps ---------------------------------------------------------------------


def test_every_destructive_feature_of_the_library_is_refused_at_plan_time(staging, tmp_path, unchanged):
    """Every runbook drill and fault scenario drdrill ships, tagged @restore-test as the team in
    the incident did: `validate` and `run` refuse it with exit 2, naming a step by file and line."""
    shipped = [f for f in sorted((ROOT / "features").rglob("*.feature")) if f.name != "restore_test.feature"
               and "@containers" not in f.read_text() and "@kubernetes" not in f.read_text()]
    assert len(shipped) >= 10
    for original in shipped:
        copy = _feature(tmp_path, original.name, "@restore-test\n" + original.read_text())
        for command in ("validate", "run"):
            result = staging.drdrill(command, str(copy), "--target", "live", "--config", str(staging.config),
                                     "--project-dir", str(tmp_path), "--report-dir", str(tmp_path / "r"))
            assert result.returncode == 2, (original.name, command, result.stderr)
            named = re.search(re.escape(str(copy)) + r":(\d+): '([^']+)'", result.stderr)
            assert named is not None, result.stderr
            assert _step_lines(copy)[int(named.group(1))] == named.group(2), result.stderr
            assert "not marked as a drill environment" in result.stderr
    assert not (tmp_path / "r").exists()


def test_the_incident_feature_is_refused_and_the_platform_database_kept(staging, tmp_path, unchanged):
    feature = _feature(tmp_path, "ours.feature", """@restore-test
Feature: Our restore test
  Scenario: Metadata
    Given the platform's newest recovery points are found
    When the metadata database is restored from the newest dump in metadata/all
""")
    result, report = staging.run(tmp_path, str(feature))
    assert result.returncode == 2 and report is None, result.stdout + result.stderr
    assert f"{feature}:5: 'When the metadata database is restored" in result.stderr
    assert staging.sql(f"SELECT count(*) FROM {PLATFORM_DB_TABLE}")[0][0] == sum(i for i, _ in TENANTS.values())


TEAM_STEPS = '''
from pytest_bdd import when


@when("our step recreates the platform's database")
def recreate(restore_test):
    db = restore_test.platform.db
    db.recreate_database(db.conn)


@when("our step deletes the platform's indices")
def delete_indices(restore_test):
    restore_test.platform.cluster.delete_indices("logs-*")


@when("our step empties the tenant table with its own SQL")
def raw_sql(restore_test):
    with restore_test.platform.db.connect() as conn:
        conn.execute("DELETE FROM tenant_containers")


@when("our step deletes a backup")
def delete_backup(restore_test):
    store = restore_test.platform.store
    store.delete([next(iter(store.list("metadata/all/"))).key])


@when("our step changes a cluster setting")
def cluster_setting(restore_test):
    restore_test.platform.cluster.set_recovery_throttle("1mb")
'''


@pytest.mark.parametrize("step", ["our step recreates the platform's database", "our step deletes the platform's "
                                  "indices", "our step empties the tenant table with its own SQL",
                                  "our step deletes a backup", "our step changes a cluster setting"])
def test_a_teams_own_step_that_writes_is_refused_by_the_target(staging, tmp_path, unchanged, step):
    """Declared harmless (it takes the restore test's fixture, not the drill's), it still cannot
    write: the live target's clients refuse before anything is sent, or PostgreSQL refuses in the
    read-only session the target opened."""
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "ours.py").write_text(TEAM_STEPS)
    feature = _feature(tmp_path, "ours.feature", f"""@restore-test
Feature: Ours
  Scenario: A step of our own
    Given the platform's newest recovery points are found
    When {step}
""")
    result, _report = staging.run(tmp_path, str(feature))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refused on live environment 'staging'" in result.stdout + result.stderr


def test_a_scratch_database_that_is_the_platforms_own_is_refused(staging, tmp_path, unchanged):
    config = tmp_path / "same.toml"
    config.write_text(staging.config.read_text().replace('[target]\n', '[target]\npostgres_scratch_dsn_env = '
                                                        '"STAGING_PG_DSN"\n'))
    result = staging.drdrill("run", "--target", "live", "--config", str(config), "--project-dir", str(tmp_path),
                             "--report-dir", str(tmp_path / "r"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the scratch database is the platform's own" in result.stderr


# --- the platform as it really is -------------------------------------------------------------


def test_the_restore_test_passes_while_the_platform_writes(staging, tmp_path):
    """One document every 0.5 s into one of the platform's indices, all through the run: left as
    found compares what a restore test could alter, not the platform's own writes."""
    before = staging.shape()
    stop = threading.Event()
    written = []

    def platform_writes() -> None:
        es = staging.es()
        try:
            while not stop.wait(0.5):
                reply = es.index(index="logs-org2-ns1-1", document={"tenant": "org2/ns1", "busy": True},
                                 refresh=True)
                written.append(reply["_id"])
        finally:
            es.close()

    writer = threading.Thread(target=platform_writes, daemon=True)
    writer.start()
    try:
        result, report = staging.run(tmp_path)
    finally:
        stop.set()
        writer.join(timeout=10)
        es = staging.es()
        for doc_id in written:  # no delete-by-query in this Elasticsearch: one by one
            es.delete(index="logs-org2-ns1-1", id=doc_id)
        es.indices.refresh(index="logs-org2-ns1-1")
        es.close()
    assert result.returncode == 0, result.stdout + result.stderr
    assert report is not None and report["verdict"] == "passed" and len(written) >= 2
    tenant = next(t for t in report["tenants"] if (t["org_id"], t["namespace"]) == ("org2", "ns1"))
    index = next(i for i in tenant["indices"] if i["name"] == "logs-org2-ns1-1")
    assert index["docs_restored"] == index["docs_expected"] == 25 and index["docs_live"] > 25
    assert tenant["restore_seconds"] > 0
    assert staging.shape() == before


def test_a_tenant_in_the_platforms_list_without_a_backup_fails_naming_it(staging, tmp_path):
    before = staging.fingerprint()
    staging.job("tenant", "org4/ns1", "2", "5")  # its indices and rows, never backed up
    try:
        result, report = staging.run(tmp_path)
    finally:
        es = staging.es()
        es.indices.delete(index="logs-org4-ns1-1,logs-org4-ns1-2")
        es.close()
        staging.sql(f"DELETE FROM {PLATFORM_DB_TABLE} WHERE org_id = 'org4'")
    assert result.returncode == 1, result.stdout + result.stderr
    assert report is not None and report["verdict"] == "failed"
    failed = [p["summary"] for p in report["problems"] if p["kind"] == "failed"]
    assert any(s.startswith("tenant org4/ns1 has no backup: 2 index(es) in the platform's tenant list")
               for s in failed), failed
    assert "org4/ns1" in result.stdout
    assert staging.fingerprint() == before


# --- crash safety and one run at a time ------------------------------------------------------


def _killed_mid_restore(staging: Staging, tmp_path: Path) -> None:
    """A run with one tenant at a time, SIGKILLed once the first tenant is back."""
    config = tmp_path / "one-at-a-time.toml"
    config.write_text(staging.config.read_text() + "\n[restore]\nconcurrency = 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "drdrill", "run", "--target", "live", "--config", str(config),
                             "--report-dir", str(tmp_path / "killed"), "--project-dir", str(tmp_path)], cwd=ROOT,
                            env=staging.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"restored 1/{len(TENANTS)} tenants" in line:
            staging.stack.signal_service("elasticsearch", signal.SIGSTOP)
            try:
                proc.kill()
                proc.wait(timeout=30)
            finally:
                staging.stack.signal_service("elasticsearch", signal.SIGCONT)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_a_killed_runs_leftovers_are_removed_by_the_next_run(staging, tmp_path):
    before = staging.fingerprint()
    _killed_mid_restore(staging, tmp_path)
    left = staging.fingerprint()
    assert any(i.startswith("drdrill-") for i in left["indices"])  # type: ignore[union-attr]
    assert any(d.startswith("drdrill_scratch_") for d in left["databases"])  # type: ignore[union-attr]
    result, report = staging.run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report is not None
    removed = report["evidence"]["notes"]["restore_test"]["target"]["leftovers_of_earlier_runs"]["removed"]
    kinds = {entry.split()[0] for entry in removed}
    assert {"index", "repository", "database", "directory"} <= kinds, removed
    assert staging.fingerprint() == before


def test_target_cleanup_removes_a_killed_runs_leftovers(staging, tmp_path):
    before = staging.fingerprint()
    _killed_mid_restore(staging, tmp_path)
    assert staging.fingerprint() != before
    result = staging.drdrill("target", "cleanup", "--config", str(staging.config))
    assert result.returncode == 0, result.stderr
    assert "removed: index drdrill-" in result.stdout and "removed: database drdrill_scratch_" in result.stdout
    assert staging.fingerprint() == before
    again = staging.drdrill("target", "cleanup", "--config", str(staging.config))
    assert again.returncode == 0 and "removed: nothing" in again.stdout


def test_a_second_run_on_a_held_environment_is_refused_naming_the_holder(staging, tmp_path, unchanged):
    with psycopg.connect(staging.ep.pg_admin_dsn(staging.ep.pg_database), autocommit=True,
                         application_name="drdrill 20261202T010203Z-abcdef") as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEYS)
        result, report = staging.run(tmp_path)
    assert result.returncode == 2 and report is None, result.stdout + result.stderr
    assert "another run of drdrill holds this environment: drdrill 20261202T010203Z-abcdef" in result.stderr


# --- untrusted input and headroom --------------------------------------------------------------


def _copy_repository(staging: Staging, source: str, target: str, rename: dict[str, str]) -> None:
    """The platform's repository of ``source`` copied to ``target``'s path, its root blob naming
    the indices as ``rename`` says (what a hostile or broken backup job could leave)."""
    for obj in staging.store.list(source + "/"):
        data = staging.store.get_bytes(obj.key)
        relative = obj.key[len(source) + 1:]
        if re.fullmatch(r"index-\d+", relative):
            text = data.decode()
            for old, new in rename.items():
                text = text.replace(f'"{old}"', f'"{new}"')
            data = text.encode()
        staging.store.put_bytes(f"{target}/{relative}", data)


def test_hostile_names_and_keys_fail_only_their_tenant(staging, tmp_path):
    before = staging.fingerprint()
    try:
        _copy_repository(staging, "org1/ns2", "org5/ns1", {"logs-org1-ns2-1": "x,*"})
        _copy_repository(staging, "org2/ns1", "org6/ns1", {"logs-org2-ns1-1": "logs-org6-ns1-1"})
        # MinIO refuses ".." segments; a backslash it keeps (elsewhere a path separator).
        staging.store.put_bytes("org6/ns1/indices\\evil\\escape", b"not a blob")
        result, report = staging.run(tmp_path)
    finally:
        staging.store.delete([o.key for prefix in ("org5/", "org6/") for o in staging.store.list(prefix)])
    assert result.returncode == 1, result.stdout + result.stderr
    assert report is not None
    failed = " | ".join(p["summary"] for p in report["problems"] if p["kind"] == "failed")
    assert "tenant org5/ns1" in failed and "not an Elasticsearch index name: 'x,*'" in failed
    assert "tenant org6/ns1" in failed and "backslash" in failed
    assert not any(t in failed for t in TENANTS)
    restored = {f"{t['org_id']}/{t['namespace']}" for t in report["tenants"] if t["indices"]}
    assert restored >= set(TENANTS)
    warned = " | ".join(p["summary"] for p in report["problems"] if p["kind"] == "warning")
    assert "org5/ns1/ holds backups but no row" in warned
    assert staging.fingerprint() == before


def test_a_restore_that_would_cross_the_high_watermark_is_refused(staging, tmp_path, unchanged):
    es = staging.es()
    keys = ("low", "high", "flood_stage")
    prefix = "cluster.routing.allocation.disk.watermark."
    # 1% used is the high watermark: no disk has room below it. Flood stage stays out of reach, so
    # the platform's own indices are never blocked meanwhile.
    es.cluster.put_settings(persistent={f"{prefix}low": "1%", f"{prefix}high": "1%",
                                        f"{prefix}flood_stage": "99.9%",
                                        "cluster.routing.allocation.disk.threshold_enabled": True})
    try:
        result, _report = staging.run(tmp_path)
    finally:
        es.cluster.put_settings(persistent={**{f"{prefix}{k}": None for k in keys},
                                            "cluster.routing.allocation.disk.threshold_enabled": None})
        es.close()
    assert result.returncode == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert "would cross the high disk watermark" in said and "KiB" in said and "GiB" in said
    assert not any(i.startswith("drdrill-") for i in staging.fingerprint()["indices"])  # type: ignore[union-attr]


# --- which recovery point (last: it adds a second night to staging) ------------------------------


def test_the_oldest_kept_point_is_restored_when_asked(staging, tmp_path):
    """Two nights kept: `point = "oldest"` restores the first night's dump and every tenant's
    snapshot of that night, while the backup exposure still reads the newest."""
    first_dump = max(o.key for o in staging.store.list("metadata/all/"))
    time.sleep(3)  # the second night is clearly later than the first one's dump
    for tenant in TENANTS:
        staging.job("snapshot", tenant, "nightly-2026.11.27-0200")
    time.sleep(1)
    second_dump = staging.job("dump", "all")
    assert second_dump > first_dump
    config = tmp_path / "oldest.toml"
    config.write_text(staging.config.read_text() + '\n[restore_test]\npoint = "oldest"\n')
    report_dir = tmp_path / "oldest"
    result = staging.drdrill("run", "--target", "live", "--config", str(config), "--report-dir", str(report_dir),
                             "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    notes = json.loads((report_dir / "report.json").read_text())["evidence"]["notes"]["restore_test"]
    assert notes["point"]["policy"] == "oldest" and notes["point"]["nights_in_window"] == 2
    points = notes["recovery_points"]
    assert {p["snapshot"] for p in points["snapshots"]} == {"nightly-2026.11.26-0200"}
    assert {p["newest"] for p in points["snapshots"]} == {"nightly-2026.11.27-0200"}
    assert next(d["key"] for d in points["dumps"] if d["scope"] == "all") == first_dump
