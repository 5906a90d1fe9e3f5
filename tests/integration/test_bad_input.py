"""Bad input: every case exits 2 with one line naming the input and what is expected, no
traceback, and no output file left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "drdrill", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=120)


def assert_usage_error(result: subprocess.CompletedProcess[str], *mentions: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drdrill: error:"), result.stderr
    for word in mentions:
        assert word in lines[0], (word, lines[0])


@pytest.fixture
def files(tmp_path):
    plain = tmp_path / "plain.sql"
    plain.write_text("SELECT 1;\n")
    (tmp_path / "empty.pw").write_text("")
    (tmp_path / "good.pw").write_text("secret\n")
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "bad.feature").write_text("Scenario without a feature\n  Given nothing\n")
    (tmp_path / "unknown-step.feature").write_text("Feature: f\n  Scenario: s\n    Given a unicorn grazes\n")
    (tmp_path / "notes.txt").write_text("not gherkin")
    steps = {"bad-rto": "Given the objectives are RTO 5 minutes and RPO 1h",
             "bad-tenant": 'When tenant "Org_1/ns1" loses its data',
             "bad-throttle": "When the operator sets the recovery throttle to fast",
             "bad-nights": "Given the nightly backup has run on each of the last 0 nights",
             "bad-version": "Given the platform runs Elasticsearch 7.10.2",
             "containers-only": "When the object store is cut off from the network"}
    for name, step in steps.items():
        (tmp_path / f"{name}.feature").write_text(f"Feature: f\n  Scenario: s\n    {step}\n")
    (tmp_path / "bad-table.feature").write_text(
        "Feature: f\n  Scenario: s\n    Given the platform holds these tenants:\n"
        "      | org_id | namespace | indices | documents |\n      | org1 | ns1 | 1 | 10 |\n"
        "      | org1 | ns2 | 2 | 10 |\n")
    (tmp_path / "a-file").write_text("x")
    done = tmp_path / "done"
    done.mkdir()
    (done / "report.json").write_text("{}")
    (tmp_path / "broken-report").mkdir()
    (tmp_path / "broken-report" / "report.json").write_text("{not json")
    return tmp_path


CASES = {
    "unknown command": (["frobnicate"], ["frobnicate"]),
    "unknown stack action": (["stack", "explode"], ["explode"]),
    "es version not a version": (["stack", "up", "--es-version", "banana"], ["es_version", "banana"]),
    "es major unsupported": (["stack", "up", "--es-version", "7.17.0"], ["es_version", "7.17.0"]),
    "es heap out of range": (["stack", "up", "--es-heap-mb", "100"], ["es_heap_mb"]),
    "es heap not a number": (["stack", "up", "--es-heap-mb", "lots"], ["--es-heap-mb"]),
    "stack not up": (["backups", "list", "--stack", "no-such-stack"], ["no-such-stack", "not up"]),
    "run on a stack not up": (["run", "--stack", "no-such-stack"], ["no-such-stack", "not up"]),
    "feature missing": (["run", "features/none.feature"], ["features/none.feature"]),
    "feature not gherkin file": (["run", "{tmp}/notes.txt"], ["notes.txt", ".feature"]),
    "feature malformed": (["run", "{tmp}/bad.feature"], ["bad.feature", "not a valid feature"]),
    "feature unknown step": (["run", "{tmp}/unknown-step.feature"], ["unicorn", "no step definition"]),
    "feature dir empty": (["run", "{tmp}/empty-dir"], ["empty-dir", "no .feature"]),
    "rto not a duration": (["run", "--rto", "soon"], ["--rto", "soon"]),
    "rpo negative": (["run", "--rpo", "-5m"], ["--rpo"]),
    "rto zero": (["run", "--rto", "0s"], ["rto"]),
    "unknown target": (["run", "--target", "mars"], ["mars"]),
    "live target without support": (["run", "--target", "live"], ["live"]),
    "report dir is a file": (["run", "--report-dir", "{tmp}/a-file"], ["a-file", "not a directory"]),
    "report dir holds a report": (["run", "--report-dir", "{tmp}/done"], ["done", "already holds a report"]),
    "encrypt without password source": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc"],
                                        ["--password-env", "--password-file"]),
    "encrypt with two password sources": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc",
                                           "--password-env", "PW", "--password-file", "{tmp}/good.pw"],
                                          ["--password-file"]),
    "password env unset": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc", "--password-env",
                            "DRDRILL_NO_SUCH_VAR"], ["DRDRILL_NO_SUCH_VAR"]),
    "password env empty": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc", "--password-env",
                            "DRDRILL_EMPTY_PW"], ["DRDRILL_EMPTY_PW"]),
    "password file missing": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc", "--password-file",
                               "{tmp}/missing.pw"], ["missing.pw"]),
    "password file empty": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc", "--password-file",
                             "{tmp}/empty.pw"], ["empty.pw"]),
    "input file missing": (["encrypt", "--in", "{tmp}/nope.sql", "--out", "{tmp}/o.enc", "--password-file",
                            "{tmp}/good.pw"], ["nope.sql"]),
    "input equals output": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/plain.sql", "--password-file",
                             "{tmp}/good.pw"], ["same file"]),
    "iterations zero": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.enc", "--password-file",
                         "{tmp}/good.pw", "--pbkdf2", "--iter", "0"], ["iter"]),
    "unknown digest": (["decrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/o.sql", "--password-file",
                        "{tmp}/good.pw", "--md", "sha1"], ["sha1"]),
    "output directory missing": (["encrypt", "--in", "{tmp}/plain.sql", "--out", "{tmp}/no/dir/o.enc",
                                  "--password-file", "{tmp}/good.pw"], ["no/dir"]),
    "report dir without report": (["report", "{tmp}/empty-dir"], ["empty-dir"]),
    "report json broken": (["report", "{tmp}/broken-report"], ["broken-report"]),
    "tenant reserved org": (["seed", "--stack", "no-such-stack", "--tenant", "metadata/x"], ["metadata"]),
    "tenant malformed": (["seed", "--stack", "no-such-stack", "--tenant", "Org_1"], ["Org_1"]),
    "config file missing": (["run", "--config", "{tmp}/none.toml"], ["none.toml", "not found"]),
    "config file not toml": (["run", "--config", "{tmp}/notes.txt"], ["notes.txt", "TOML"]),
    "keep days zero": (["backups", "prune", "--stack", "no-such-stack", "--keep-days", "0"], ["--keep-days"]),
    # Every step argument is parsed when the run is planned: validate and run refuse alike, naming the line.
    "step duration malformed": (["run", "{tmp}/bad-rto.feature"], ["bad-rto.feature:3", "5 minutes", "hint:"]),
    "step duration malformed (validate)": (["validate", "{tmp}/bad-rto.feature"], ["bad-rto.feature:3", "5 minutes"]),
    "step tenant malformed": (["validate", "{tmp}/bad-tenant.feature"], ["bad-tenant.feature:3", "Org_1"]),
    "step throttle malformed": (["run", "{tmp}/bad-throttle.feature"], ["bad-throttle.feature:3", "byte rate"]),
    "step nights zero": (["run", "{tmp}/bad-nights.feature"], ["bad-nights.feature:3", "nights"]),
    "step es version unsupported": (["run", "{tmp}/bad-version.feature"], ["bad-version.feature:3", "7.10.2"]),
    "step table of two sizes": (["validate", "{tmp}/bad-table.feature"], ["bad-table.feature:3", "same whole"]),
    "step needs containers": (["validate", "{tmp}/containers-only.feature"],
                              ["--target containers", "containers-only.feature:3"]),
    "validate on a stack not up": (["validate", "--stack", "no-such-stack"], ["no-such-stack", "not up"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, files):
    args, mentions = CASES[case]
    reports = ROOT / "reports"
    before = sorted(p.relative_to(files) for p in files.rglob("*"))
    reports_before = set(reports.iterdir()) if reports.exists() else set()
    argv = [a.replace("{tmp}", str(files)) for a in args]
    result = cli(*argv, env={"DRDRILL_EMPTY_PW": "", "PW": "x"})
    assert_usage_error(result, *[m.replace("{tmp}", str(files)) for m in mentions])
    assert sorted(p.relative_to(files) for p in files.rglob("*")) == before, "partial output left behind"
    assert (set(reports.iterdir()) if reports.exists() else set()) == reports_before, "a report was written"


def test_there_are_at_least_25_distinct_bad_inputs():
    assert len(CASES) >= 25


@pytest.mark.integration
def test_unknown_tenant_and_foreign_bucket_layout(session_stack, endpoints, unique):
    from drdrill.adapters.s3 import ObjectStore

    result = cli("backup", "--stack", session_stack.stack_name, "--tenant", f"o{unique}/nope", "--es-only")
    assert_usage_error(result, f"o{unique}/nope", "unknown tenant")
    store = ObjectStore(endpoints.s3_endpoint, endpoints.s3_access_key, endpoints.s3_secret_key, endpoints.bucket)
    stray = f"stray-{unique}.txt"
    store.put_bytes(stray, b"not a backup")
    try:
        before = {o.key for o in store.list("")}
        for args in (["backups", "list"], ["backups", "prune"], ["run"]):
            result = cli(*args, "--stack", session_stack.stack_name)
            assert_usage_error(result, "not laid out as the platform's")
        assert {o.key for o in store.list("")} == before
    finally:
        store.delete([stray])
