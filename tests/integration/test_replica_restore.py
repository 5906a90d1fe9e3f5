"""Replicas and the floor under the restore (issue 24, items 2-4) on real services: every drill
records the cluster-state time Elasticsearch spent during its restore and the restore's parts
(primaries, replicas); a cluster too small for its replicas fails as soon as Elasticsearch says
so, naming its allocation explanation, never by running out of time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.core.cluster_state import default_replicas

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

SMALL_DRILL = """Feature: A small full-site drill
  Scenario: Two tenants recovered
    Given the objectives are RTO 10m and RPO 24h
    And the platform holds 2 tenants with 1 indices of 200 documents each
    And the nightly backup has run
    When the site is lost
    And Elasticsearch and PostgreSQL are redeployed
    And the metadata database is restored from the newest dump in metadata/all
    And every tenant's snapshot is restored from MinIO
    And data integrity is verified
    Then every index is green with the documents its snapshot held
"""


def _run(tmp_path: Path, stack: str, feature: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    report_dir = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", str(feature), "--stack", stack,
                             "--report-dir", str(report_dir), "--project-dir", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert (report_dir / "report.json").exists(), result.stdout + result.stderr
    return result, json.loads((report_dir / "report.json").read_text())


def test_every_drill_records_the_cluster_state_floor_and_the_restore_parts(session_stack, tmp_path):
    feature = tmp_path / "small.feature"
    feature.write_text(SMALL_DRILL)
    result, report = _run(tmp_path, session_stack.stack_name, feature)
    assert result.returncode == 0, result.stdout + result.stderr
    [restore] = report["evidence"]["notes"]["restore"]
    # Restoring 2 tenants (an index and a canary each) publishes states; the master spent time on them.
    assert restore["cluster_states"] > 0 and restore["cluster_state_seconds"] > 0
    assert restore["cluster_state_seconds"] <= restore["seconds"] * 4  # a share of work, not a wild number
    phases = {p["name"]: p for p in report["phases"]}
    whole, primaries = phases["restore-snapshots"], phases["restore-primaries"]
    assert whole["start_offset_seconds"] <= primaries["start_offset_seconds"] \
        <= primaries["end_offset_seconds"] <= whole["end_offset_seconds"]
    cluster = SearchCluster(session_stack.endpoints().elasticsearch_url)
    try:
        replicas = default_replicas(cluster.data_nodes())
    finally:
        cluster.close()
    # The indices were seeded with the replicas the cluster can hold (none on one node, where a
    # replica would never start); the replica part is there exactly when there were replicas.
    assert restore["replicas"] == replicas
    assert ("restore-replicas" in phases) == (replicas > 0)
    if replicas:
        assert phases["restore-replicas"]["start_offset_seconds"] == primaries["end_offset_seconds"]
        assert restore["replicas_seconds"] >= 0


def test_a_cluster_too_small_for_its_replicas_fails_naming_the_allocation_explanation(session_stack, tmp_path):
    result, report = _run(tmp_path, session_stack.stack_name, ROOT / "features" / "faults" / "replicas.feature")
    # The fault scenario is a gate: it passes when the recovery failed as it says.
    assert result.returncode == 0, result.stdout + result.stderr
    [scenario] = report["scenarios"]
    assert scenario["verdict"] == "passed", scenario["verdict_reasons"]
    [problem] = [p for p in report["problems"] if p["phase"] == "restore-snapshots"]
    assert problem["kind"] == "failed"
    # Elasticsearch's own explanation, as soon as it gave it: not the end of the wait.
    assert "replica cannot be allocated" in problem["summary"] and "same_shard" in problem["summary"]
    assert "not complete after" not in problem["summary"]
    assert "a copy of this shard is already allocated to this node" in problem["summary"]
    # Found as soon as the replica's primary had started (the tenant's canary may still have been
    # recovering): the restore's parts end there, failed, and the whole phase with them.
    phases = {p["name"]: p for p in report["phases"]}
    assert phases["restore-snapshots"]["status"] == "failed"
    assert "failed" in {phases["restore-primaries"]["status"], phases.get("restore-replicas", {}).get("status")}
