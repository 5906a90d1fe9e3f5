import json
from datetime import UTC, datetime

import pytest

from drdrill.core.clock import FakeClock
from drdrill.core.objectives import Objectives
from drdrill.core.report import (
    SCHEMA_VERSION,
    Achieved,
    Evidence,
    Forecast,
    IndexResult,
    ObjectRef,
    Problem,
    Report,
    ReportFormatError,
    Scenario,
    SnapshotRef,
    Step,
    TenantResult,
    Weakness,
    redact,
)
from drdrill.core.timeline import Timeline
from drdrill.errors import RestoreFailed

START = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)


def sample_report() -> Report:
    clock = FakeClock(START)
    tl = Timeline(clock)
    with tl.phase("backup"):
        clock.advance(30)
    tl.mark_disaster(kind="delete-indices")
    with pytest.raises(RestoreFailed), tl.phase("restore-snapshots"):
        clock.advance(95.5)
        raise RestoreFailed("snapshot nightly-1 PARTIAL")
    clock.advance(1)
    tl.mark_recovered()
    return Report(
        drill_id="drill-20250301T020000Z",
        target="local",
        started_at=tl.origin,
        finished_at=clock.wall(),
        objectives=Objectives(1800, 86400),
        achieved=Achieved(rto_seconds=96.5, rpo_seconds=3600.0, backup_exposure_seconds=7200.0),
        verdict="failed",
        verdict_reasons=["a verification failed"],
        phases=tl.phases,
        events=tl.events,
        tenants=[
            TenantResult(
                "org1",
                "ns1",
                [IndexResult("logs", 100, 99), IndexResult("metrics", 5, 5)],
                3600.0,
                {"elasticsearch": 3600.0, "postgresql": 60.0},
            )
        ],
        evidence=Evidence(
            operator="alice",
            snapshots=[SnapshotRef("org1-ns1", "nightly-1", "uuid-1", "org1", "ns1")],
            objects=[ObjectRef("metadata/all/metadata_backup_all_20250301T020000Z.sql.enc", "ab" * 32, 1234)],
            versions={"elasticsearch": "9.1.0", "openssl": "3.0.13"},
        ),
        problems=[
            Problem("restore-snapshots", "failed", "snapshot PARTIAL", "a shard failed", {"shards": 1})
        ],
        weaknesses=[Weakness("dump uses legacy -md md5 key derivation", "re-encrypt with -pbkdf2")],
        scenarios=[Scenario("full recovery", "failed", [Step("Given a backup", "passed", 1.0)])],
        forecast=Forecast(2**30, 90.0, 30.0, 100 * 2**30, 9030.0),
    )


def test_to_dict_carries_the_contract_fields():
    d = sample_report().to_dict()
    for key in (
        "schema_version", "drill_id", "target", "started_at", "finished_at", "objectives", "achieved",
        "verdict", "phases", "tenants", "evidence", "problems", "previous_report_sha256",
        "incomplete", "weaknesses", "events", "forecast", "scenarios",
    ):  # fmt: skip
        assert key in d
    assert d["schema_version"] == SCHEMA_VERSION == 2
    assert d["objectives"] == {"rto_seconds": 1800, "rpo_seconds": 86400}
    assert set(d["achieved"]) == {"rto_seconds", "rpo_seconds", "backup_exposure_seconds"}
    phase = d["phases"][1]
    assert {"name", "started_at", "finished_at", "duration_seconds", "status"} <= set(phase)
    assert phase["status"] == "failed" and phase["duration_seconds"] == 95.5
    assert d["started_at"] == "2025-03-01T02:00:00.000Z"
    tenant = d["tenants"][0]
    assert tenant["indices"][0] == {"name": "logs", "docs_expected": 100, "docs_restored": 99, "status": "failed"}
    assert d["problems"][0]["kind"] == "failed"


def test_round_trip_is_exact():
    report = sample_report()
    again = Report.from_dict(report.to_dict())
    assert again == report
    assert Report.from_json(report.to_json()).to_json() == report.to_json()


def test_to_json_is_deterministic_sorted_two_space():
    text = sample_report().to_json()
    assert text == sample_report().to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert '\n  "achieved": {' in text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(verdict="maybe"), "verdict"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d.pop("drill_id"), "drill_id"),
        (lambda d: d["problems"][0].update(kind="oops"), "kind"),
        (lambda d: d["phases"][0].update(status="done"), "status"),
    ],
)
def test_from_dict_rejects_malformed(mutate, message):
    d = sample_report().to_dict()
    mutate(d)
    with pytest.raises(ReportFormatError, match=message):
        Report.from_dict(d)


def test_from_json_rejects_non_json():
    with pytest.raises(ReportFormatError):
        Report.from_json("{not json")
    with pytest.raises(ReportFormatError):
        Report.from_json("[]")


def test_redact_masks_secret_keys_and_dsn_passwords():
    data = {
        "password": "hunter2",
        "DB_PASSWORD": "hunter2",
        "secret_key": "minio-secret",
        "secretKey": "minio-secret",
        "access_key_secret": "x1",
        "api-key": "k",
        "access_key": "minioadmin",
        "verifications_passed": True,
        "sha256": "ab" * 32,
        "empty_password": None,
        "dsn": "postgresql://es_user:p@ss/w0rd@localhost:5432/es_metadata",
        "nested": [{"token": "t"}, "host=db user=u password='s 3' dbname=x", "http://localhost:9200/_cat"],
    }
    out = redact(data)
    dumped = json.dumps(out)
    for secret in ("hunter2", "minio-secret", "x1", "p@ss", "w0rd", "'s 3'"):
        assert secret not in dumped
    assert out["password"] == "***"
    assert out["access_key"] == "minioadmin"
    assert out["verifications_passed"] is True
    assert out["sha256"] == "ab" * 32
    assert out["empty_password"] is None
    assert out["dsn"] == "postgresql://es_user:***@localhost:5432/es_metadata"
    assert out["nested"][0] == {"token": "***"}
    assert out["nested"][1] == "host=db user=u password=*** dbname=x"
    assert out["nested"][2] == "http://localhost:9200/_cat"
    assert data["password"] == "hunter2"  # the input is not modified


def test_report_serialisation_never_contains_secrets():
    report = sample_report()
    report.evidence.notes["postgres"] = {"dsn": "postgresql://es_user:topsecret@db/es_metadata"}
    report.problems[0].evidence["secret_key"] = "minio-secret"
    report.problems[0].diagnosis = "connect to postgresql://es_user:topsecret@db failed"
    text = report.to_json()
    assert "topsecret" not in text
    assert "minio-secret" not in text
    assert "postgresql://es_user:***@db" in text


def test_cucumber_steps_take_the_reports_status():
    """pytest-bdd calls every step after a failure "failed"; the report's record wins."""
    from drdrill.core.report import Scenario, Step
    from drdrill.drill.bdd import align_cucumber

    cucumber = [{"elements": [{"name": "s", "steps": [
        {"name": "a", "line": 3, "result": {"status": "passed"}},
        {"name": "b", "line": 4, "result": {"status": "passed"}},
        {"name": "c", "line": 5, "result": {"status": "failed"}},
    ]}]}]
    ours = [Scenario("s", "passed", [Step("Given a", "passed", line=3), Step("When b", "skipped", line=4, error="x"),
                                     Step("Then c", "skipped", line=5)])]
    aligned = align_cucumber(cucumber, ours)
    assert aligned is not None
    assert [s["result"]["status"] for s in aligned[0]["elements"][0]["steps"]] == ["passed", "skipped", "skipped"]
    assert aligned[0]["elements"][0]["steps"][1]["result"]["error_message"] == "x"
    assert align_cucumber(None, ours) is None
