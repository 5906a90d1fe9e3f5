"""`drdrill run --target live`: the restore test of backups drdrill did not write.

A "staging" environment is a separate local stack filled and backed up the platform's way
(tests/platform/platform_job.sh: psql, curl, Elasticsearch's own snapshot API with the
platform's snapshot names, `pg_dump | openssl enc -aes-256-cbc -salt -k`, no checksum records).
Every case compares the environment with a fingerprint taken before it: the drill must leave
it exactly as it found it, whatever happened.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest
from elasticsearch import Elasticsearch

from .staging import DUMP_PASSWORD, ROOT, TENANTS, config_text

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_target_check_names_versions_and_capabilities(staging):
    result = staging.drdrill("target", "check", "--config", str(staging.config))
    assert result.returncode == 0, result.stderr
    assert "9." in result.stdout and "may create a scratch database" in result.stdout
    wrong = {**staging.env, "STAGING_S3_SECRET_KEY": "not-the-key"}
    refused = staging.drdrill("target", "check", "--config", str(staging.config), env=wrong)
    assert refused.returncode == 2
    assert refused.stderr.startswith("drdrill: error: s3 ") and "SignatureDoesNotMatch" in refused.stderr
    missing = {k: v for k, v in staging.env.items() if k != "STAGING_PG_DSN"}
    unset = staging.drdrill("target", "check", "--config", str(staging.config), env=missing)
    assert unset.returncode == 2 and "STAGING_PG_DSN is not set" in unset.stderr


@pytest.mark.es_matrix
def test_the_platforms_backups_restore_and_staging_is_left_as_it_was(staging, tmp_path, unchanged):
    result, report = staging.run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report is not None and report["verdict"] == "passed" and report["target"] == "live"
    assert "PASSED" in result.stdout
    points = report["evidence"]["notes"]["restore_test"]["recovery_points"]
    assert sorted(p["tenant"] for p in points["snapshots"]) == sorted(TENANTS)
    assert {p["snapshot"] for p in points["snapshots"]} == {"nightly-2026.11.26-0200"}
    assert {d["scope"] for d in points["dumps"]} == {"all", "org1", "org2"}
    assert not any(d["checksum_record"] for d in points["dumps"])  # the platform writes none
    assert any("no checksum record" in w["summary"] for w in report["weaknesses"])
    restored = {(t["org_id"] + "/" + t["namespace"]): {i["name"]: i["docs_restored"] for i in t["indices"]}
                for t in report["tenants"]}
    assert restored == {tenant: {f"logs-{tenant.replace('/', '-')}-{n}": docs for n in range(1, indices + 1)}
                        for tenant, (indices, docs) in TENANTS.items()}
    assert report["achieved"]["rto_seconds"] > 0 and report["achieved"]["rpo_seconds"] > 0
    checks = report["evidence"]["notes"]["restore_test"]["runbook_checks"]
    assert checks["SELECT COUNT(*) FROM tenant_containers"] == sum(i for i, _ in TENANTS.values())
    assert report["evidence"]["notes"]["restore_test"]["target"]["environment"] == "staging"
    text = json.dumps(report)
    for secret in (staging.ep.s3_secret_key, DUMP_PASSWORD, staging.ep.pg_admin_password):
        assert secret not in text


def test_the_auditors_first_page_answers_without_scrolling(staging, tmp_path, unchanged):
    """Headless Chromium prints report.html; page 1 of the PDF alone names the verdict, the
    environment, the date, the tester, RTO/RPO against targets, the backups restored (keys,
    snapshot names and when they were taken), the promises with the controls they evidence (from
    the team's own mapping here)."""
    # A team's own controls mapping replaces drdrill's; who tested is recorded as the settings say.
    (tmp_path / "our-controls.toml").write_text('[controls]\nrto = ["OUR-BCP-1", "ISO/IEC 27001:2022 A.5.30"]\n'
                                                'rpo = ["OUR-BCP-2", "ISO/IEC 27001:2022 A.8.13", "SOC 2 A1.2", '
                                                '"DORA Art. 12", "NIST SP 800-53 CP-4"]\n')
    config = tmp_path / "audited.toml"
    config.write_text(staging.config.read_text() + '\n[evidence]\ncontrols_file = "our-controls.toml"\n'
                      'tester = "Jane Roe, internal audit"\nindependent = true\n')
    report_dir = tmp_path / "audited"
    result = staging.drdrill("run", "--target", "live", "--config", str(config), "--report-dir", str(report_dir),
                             "--project-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((report_dir / "report.json").read_text())
    mapping = report["evidence"]["notes"]["controls_mapping"]
    assert mapping["source"] == str(tmp_path / "our-controls.toml") and len(mapping["sha256"]) == 64
    assert report["evidence"]["notes"]["tested_by"]["independent"] is True
    assert len(report["evidence"]["versions"]["drdrill_code_sha256"]) == 64
    assert next(c for c in report["controls"] if c["key"] == "rto")["standards"][0] == "OUR-BCP-1"
    assert next(c for c in report["controls"] if c["key"] == "cadence")["standards"] == []  # replaced, not merged
    printed = staging.drdrill("report", str(report_dir), "--pdf")
    assert printed.returncode == 0, printed.stderr
    page = subprocess.run(["pdftotext", "-f", "1", "-l", "1", str(report_dir / "report.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    words = " ".join(page.split())
    dump = next(d["key"] for d in report["evidence"]["notes"]["restore_test"]["recovery_points"]["dumps"]
                if d["scope"] == "all")
    for expected in ("PASSED", "staging", report["finished_at"][:10], "RTO", "RPO", "30m 00s", "24h 00m",
                     dump, "nightly-2026.11.26-0200", "Restored from", "ISO/IEC 27001:2022 A.8.13", "SOC 2 A1.2",
                     "DORA Art. 12", "CP-4", "OUR-BCP-1", "Jane Roe, internal audit",
                     "independent of the platform's operators"):
        assert expected in words, (expected, page[:3000])
    for control in report["controls"]:
        assert control["promise"][:25] in words, control["promise"]


def test_a_wrong_dump_password_fails_naming_the_dump(staging, tmp_path, unchanged):
    result, report = staging.run(tmp_path, env={**staging.env, "STAGING_DB_PASSWORD": "not the password"})
    assert result.returncode == 1, result.stderr
    assert report is not None and report["verdict"] == "failed"
    assert "metadata/all/metadata_backup_all_" in result.stdout and "cannot be decrypted" in result.stdout


def test_a_truncated_newest_dump_fails_naming_it(staging, tmp_path):
    before = staging.fingerprint()
    newest = max(o.key for o in staging.store.list("metadata/all/"))
    data = staging.store.get_bytes(newest)
    time.sleep(1)  # the truncated one is newer by its name's second
    truncated = tmp_path / "truncated.sql.enc"
    truncated.write_bytes(data[: len(data) // 2 // 16 * 16])
    key = f"metadata/all/metadata_backup_all_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}.sql.enc"
    staging.job("put", key, str(truncated))
    try:
        result, report = staging.run(tmp_path)
        assert result.returncode == 1, result.stderr
        assert key in result.stdout
        assert report is not None and any(key in p["summary"] for p in report["problems"] if p["kind"] == "failed")
    finally:
        staging.job("delete", key)
    assert staging.fingerprint() == before


def test_no_snapshot_within_the_rpo_fails_naming_the_tenants(staging, tmp_path, unchanged):
    result, report = staging.run(tmp_path, "--rpo", "1s")
    assert result.returncode == 1, result.stderr
    assert report is not None
    failed = " ".join(p["summary"] for p in report["problems"] if p["kind"] == "failed")
    for tenant in TENANTS:
        assert f"tenant {tenant} has no complete snapshot within the RPO" in failed


def test_the_platforms_own_repository_registrations_are_never_touched(staging, tmp_path, unchanged):
    """Staging's cluster has its own repositories on the tenants' paths: drdrill registers its
    own, read-only, under names of its own, and removes only those."""
    es = Elasticsearch(staging.ep.elasticsearch_url, request_timeout=30)
    before = dict(es.snapshot.get_repository())
    es.close()
    assert {f"platform-{t.replace('/', '-')}" for t in TENANTS} <= set(before)
    result, report = staging.run(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report is not None
    used = {s["repository"] for s in report["evidence"]["snapshots"]}
    assert used and not used & set(before) and all(r.startswith("drdrill-") for r in used)


def test_ctrl_c_mid_restore_leaves_nothing_behind(staging, tmp_path, unchanged):
    report_dir = tmp_path / "interrupted"
    # One tenant at a time, interrupted once the first is back: the others are mid-restore.
    config = tmp_path / "one-at-a-time.toml"
    config.write_text(staging.config.read_text() + "\n[restore]\nconcurrency = 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "drdrill", "run", "--target", "live", "--config",
                             str(config), "--report-dir", str(report_dir), "--project-dir", str(tmp_path)],
                            cwd=ROOT, env=staging.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # A shell without job control runs background jobs with SIGINT ignored,
                            # and children inherit that: the operator's Ctrl-C must reach this one.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"restored 1/{len(TENANTS)} tenants" in line:
            # Staging's Elasticsearch is frozen first: however late this line was read, the
            # other tenants cannot finish before the Ctrl-C lands (a 3-tenant restore takes <1 s).
            staging.stack.signal_service("elasticsearch", signal.SIGSTOP)
            try:
                proc.send_signal(signal.SIGINT)
                time.sleep(1)
            finally:
                staging.stack.signal_service("elasticsearch", signal.SIGCONT)
            break
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out
    report = json.loads((report_dir / "report.json").read_text())
    assert report["incomplete"] and report["verdict"] == "error"


def test_a_destructive_drill_on_an_unmarked_environment_is_refused(staging, tmp_path, unchanged):
    result, report = staging.run(tmp_path, str(ROOT / "features" / "full_site_recovery.feature"))
    assert result.returncode == 2 and report is None
    assert "not marked as a drill environment" in result.stderr and "drdrill/DRILL_ENVIRONMENT" in result.stderr


def test_a_destructive_drill_on_a_marked_environment_stops_before_touching_it(staging, tmp_path):
    """Marked twice over, it is allowed, but cannot be done without Kubernetes: exit 3 before
    anything is touched, never a half-done recovery."""
    marked = tmp_path / "marked.toml"
    marked.write_text(config_text(staging.ep, environment="drill"))
    staging.store.put_bytes("drdrill/DRILL_ENVIRONMENT", b"drill environment\n")
    try:
        before = staging.fingerprint()
        result = staging.drdrill("run", "features/full_site_recovery.feature", "--target", "live", "--config",
                                 str(marked), "--report-dir", str(tmp_path / "r"), "--project-dir", str(tmp_path))
        assert result.returncode == 3, result.stderr
        assert "Kubernetes" in result.stderr and not (tmp_path / "r").exists()
        assert staging.fingerprint() == before
    finally:
        staging.store.delete(["drdrill/DRILL_ENVIRONMENT"])


def test_metrics_between_drills_parse_and_gate_on_the_rpo(staging, tmp_path, unchanged):
    from prometheus_client.parser import text_string_to_metric_families

    out = tmp_path / "drdrill.prom"
    result = staging.drdrill("metrics", "--config", str(staging.config), "--textfile", str(out),
                             "--history", str(tmp_path / "none.jsonl"))
    assert result.returncode == 0, result.stdout + result.stderr
    families = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    ages = {(s.labels["org_id"], s.labels["namespace"]): s.value
            for s in families["drdrill_snapshot_age_seconds"].samples}
    assert {f"{o}/{n}" for o, n in ages} >= set(TENANTS) and all(0 <= v < 3600 for v in ages.values())
    points = {s.labels["org_id"] + "/" + s.labels["namespace"]: s.value
              for s in families["drdrill_snapshot_recovery_points"].samples}
    assert all(points[t] >= 1 for t in TENANTS)
    assert all(s.value > 0 for s in families["drdrill_repository_bytes"].samples)
    assert all(s.value == 0 for s in families["drdrill_outside_rpo"].samples)
    strict = tmp_path / "strict.toml"
    strict.write_text(staging.config.read_text() + '[objectives]\nrpo = "1s"\n')
    time.sleep(1.1)
    late = staging.drdrill("metrics", "--config", str(strict), "--textfile", str(out))
    assert late.returncode == 1 and "OUTSIDE RPO" in late.stdout
    families = {f.name: f for f in text_string_to_metric_families(out.read_text())}
    assert all(s.value == 1 for s in families["drdrill_outside_rpo"].samples)


def test_tenant_credentials_named_in_the_settings_are_tried_read_only(staging, tmp_path, unchanged):
    """The platform's operators made a MinIO user per tenant; [target] names their keys. The
    restore test lists and reads with them, never writes, and fails when one reaches another
    tenant's path."""
    from drdrill.adapters.s3 import StoreAdmin

    admin = StoreAdmin(staging.ep.s3_endpoint, staging.ep.s3_access_key, staging.ep.s3_secret_key)
    tenants = ["org1/ns1", "org1/ns2", "org2/ns1"]
    users = {t: (f"platform-{t.replace('/', '-')}", uuid.uuid4().hex) for t in tenants}
    env, table = dict(staging.env), ""
    for tenant, (user, secret) in users.items():
        admin.grant_prefixes(user, secret, staging.ep.bucket, [f"{tenant}/"])
        var = tenant.replace("/", "_").upper()
        env |= {f"{var}_ACCESS": user, f"{var}_SECRET": secret}
        table += (f'\n[target.tenant_credentials."{tenant}"]\naccess_key_env = "{var}_ACCESS"\n'
                  f'secret_key_env = "{var}_SECRET"\n')
    config = tmp_path / "with-tenants.toml"
    config.write_text(staging.config.read_text() + table)

    def run(name: str) -> tuple[subprocess.CompletedProcess[str], dict]:
        report_dir = tmp_path / name
        result = staging.drdrill("run", "--target", "live", "--config", str(config), "--report-dir",
                                 str(report_dir), "--project-dir", str(tmp_path), env=env)
        return result, json.loads((report_dir / "report.json").read_text())

    try:
        result, report = run("isolated")
        assert result.returncode == 0, result.stdout + result.stderr
        checks = [c for c in report["evidence"]["notes"]["checks"] if c["name"].startswith("isolation:")]
        assert sum("lists and reads its own path" in c["name"] for c in checks) == 3
        refused = [c for c in checks if "is refused tenant" in c["name"]]
        assert len(refused) == 3 * 2 and all(c["passed"] and c["detail"] == "AccessDenied" for c in refused)
        assert not any("writes" in c["name"] for c in checks)  # read only
        control = next(c for c in report["controls"] if "isolation" in c["promise"])
        assert control["status"] == "passed" and "read only" in control["evidence"]
        for _user, secret in users.values():
            assert secret not in json.dumps(report)

        # One policy written too wide: org1/ns2's user also reaches org1/ns1's path.
        user, secret = users["org1/ns2"]
        admin.grant_prefixes(user, secret, staging.ep.bucket, ["org1/ns2/", "org1/ns1/"])
        result, report = run("too-wide")
        assert result.returncode == 1, result.stdout + result.stderr
        control = next(c for c in report["controls"] if "isolation" in c["promise"])
        assert control["status"] == "failed" and "org1/ns1" in control["evidence"]
        assert "reached it: list, read" in control["evidence"]
    finally:
        for user, _secret in users.values():
            admin.remove_user(user)


def test_a_tenant_whose_newest_snapshot_is_partial_fails_naming_it(staging, tmp_path):
    """Last: it leaves a PARTIAL snapshot in staging, as the platform's job would have."""
    staging.job("tenant", "org3/ns1", "1", "10")
    staging.job("snapshot", "org3/ns1", "nightly-2026.11.25-0200")
    staging.job("unassignable", "org3/ns1")
    staging.job("snapshot", "org3/ns1", "nightly-2026.11.26-0200", "partial")
    before = staging.fingerprint()
    result, report = staging.run(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "tenant org3/ns1" in result.stdout and "PARTIAL" in result.stdout
    assert report is not None
    # The other tenants were still restored and reported.
    assert {r["org_id"] + "/" + r["namespace"] for r in report["tenants"] if r["indices"]} >= set(TENANTS)
    assert staging.fingerprint() == before
