"""The local stack's three services are real and usable with the platform's own clients."""

from __future__ import annotations

import psutil
import psycopg
import pytest
from elasticsearch import Elasticsearch

from drdrill.adapters.s3 import ObjectStore

pytestmark = pytest.mark.integration


def test_elasticsearch_health_and_index_round_trip(endpoints, unique):
    es = Elasticsearch(endpoints.elasticsearch_url, request_timeout=30)
    assert es.cluster.health()["status"] in ("green", "yellow")
    index = f"it-{unique}"
    es.indices.create(index=index, settings={"number_of_shards": 1, "number_of_replicas": 0})
    es.index(index=index, id="1", document={"tenant": "org1/ns1", "n": 42}, refresh="wait_for")
    assert es.get(index=index, id="1")["_source"] == {"tenant": "org1/ns1", "n": 42}
    assert es.count(index=index)["count"] == 1
    es.indices.delete(index=index)
    assert not es.indices.exists(index=index)


def test_s3_put_get_list_on_minio(endpoints, unique):
    store = ObjectStore(endpoints.s3_endpoint, endpoints.s3_access_key, endpoints.s3_secret_key, endpoints.bucket)
    keys = [f"it-{unique}/a.txt", f"it-{unique}/b/c.txt"]
    for number, key in enumerate(keys):
        store.put_bytes(key, f"payload {number}".encode())
    assert store.get_bytes(keys[1]) == b"payload 1"
    assert sorted(o.key for o in store.list(f"it-{unique}/")) == sorted(keys)
    assert store.exists(keys[0]) and not store.exists(f"it-{unique}/missing")
    store.delete(keys)
    assert list(store.list(f"it-{unique}/")) == []


def test_minio_rejects_wrong_credentials(endpoints):
    from drdrill.errors import ServiceError

    store = ObjectStore(endpoints.s3_endpoint, endpoints.s3_access_key, "not-the-secret", endpoints.bucket)
    with pytest.raises(ServiceError):
        list(store.list(""))


def test_postgres_sql_round_trip_as_platform_user(endpoints, unique):
    table = f"it_{unique}"
    with psycopg.connect(endpoints.pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (org_id text, namespace text, n int)")
        conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)", ("org1", "ns1", 7))
        assert conn.execute(f"SELECT org_id, namespace, n FROM {table}").fetchall() == [("org1", "ns1", 7)]
        assert conn.execute("SELECT current_database(), current_user").fetchone() == ("es_metadata", "es_user")
        conn.execute(f"DROP TABLE {table}")


def test_status_reports_three_healthy_services(session_stack):
    status = session_stack.status()
    assert status["up"] is True
    assert sorted(r["service"] for r in status["services"]) == ["elasticsearch", "minio", "postgres"]
    assert all(r["healthy"] and r["running"] for r in status["services"])


def test_secrets_are_not_on_any_command_line(session_stack, endpoints):
    secrets = [endpoints.s3_secret_key, endpoints.pg_password, endpoints.pg_admin_password]
    for row in session_stack.status()["services"]:
        proc = psutil.Process(row["pid"])
        for member in [proc, *proc.children(recursive=True)]:
            try:
                cmdline = " ".join(member.cmdline())
            except psutil.NoSuchProcess:  # a backend that ended meanwhile (zombies included)
                continue
            assert not any(secret in cmdline for secret in secrets), row["service"]


def test_services_listen_on_loopback_only(session_stack):
    for row in session_stack.status()["services"]:
        proc = psutil.Process(row["pid"])
        addresses = {
            conn.laddr.ip
            for member in [proc, *proc.children(recursive=True)]
            for conn in member.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
        assert addresses, f"{row['service']} listens nowhere"
        assert addresses <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, (row["service"], addresses)
