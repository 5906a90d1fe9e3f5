"""A "staging" environment for the live target's tests: a separate local stack filled and backed
up the platform's way (tests/platform/platform_job.sh: psql, curl, Elasticsearch's own snapshot
API with the platform's snapshot names, `pg_dump | openssl enc -aes-256-cbc -salt -k`, no
checksum records), and drdrill run against it as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from elasticsearch import Elasticsearch

from drdrill.adapters.platform import Endpoints
from drdrill.adapters.s3 import ObjectStore
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "platform" / "platform_job.sh"
TENANTS = {"org1/ns1": (2, 30), "org1/ns2": (1, 20), "org2/ns1": (1, 25)}
DUMP_PASSWORD = "runbook dump pass"


@dataclass
class Staging:
    stack: LocalStack
    ep: Endpoints
    env: dict[str, str]  # the job's environment, and the secrets the [target] table names
    config: Path
    store: ObjectStore

    def job(self, *args: str) -> str:
        result = subprocess.run(["bash", str(JOB), *args], env=self.env, capture_output=True, text=True,
                                timeout=300, check=False)
        assert result.returncode == 0, (args, result.stderr[-1000:])
        return result.stdout.strip()

    def drdrill(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "drdrill", "-q", *args], cwd=ROOT, capture_output=True,
                              text=True, env=env or self.env, timeout=600, check=False)

    def run(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None
            ) -> tuple[subprocess.CompletedProcess[str], dict | None]:
        report_dir = tmp_path / f"report-{uuid.uuid4().hex[:6]}"
        result = self.drdrill("run", *args, "--target", "live", "--config", str(self.config), "--report-dir",
                              str(report_dir), "--project-dir", str(tmp_path), env=env)
        path = report_dir / "report.json"
        return result, json.loads(path.read_text()) if path.exists() else None

    def fingerprint(self) -> dict[str, object]:
        """Indices (+ uuid, count), aliases, repositories, databases, rows, bucket objects +
        ETags: read with the services' own clients, independently of drdrill's."""
        es = Elasticsearch(self.ep.elasticsearch_url, request_timeout=30)
        try:
            indices = {r["index"]: (r["uuid"], r["docs.count"]) for r in es.cat.indices(format="json",
                                                                                       h="index,uuid,docs.count")}
            aliases = dict(es.indices.get_alias())
            repositories = dict(es.snapshot.get_repository())
        finally:
            es.close()
        with psycopg.connect(self.ep.pg_admin_dsn(self.ep.pg_database)) as conn:
            databases = sorted(r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall())
            rows = conn.execute("SELECT count(*), sum(doc_count) FROM tenant_containers").fetchone()
        objects = {o.key: o.etag for o in self.store.list("")}
        return {"indices": indices, "aliases": aliases, "repositories": repositories, "databases": databases,
                "rows": rows, "objects": objects}


    def shape(self) -> dict[str, object]:
        """What a restore test could alter, not what the platform's own traffic changes: the
        fingerprint without document counts and rows."""
        found = self.fingerprint()
        found["indices"] = {name: uuid for name, (uuid, _docs) in found["indices"].items()}  # type: ignore[union-attr]
        del found["rows"]
        return found

    def es(self) -> Elasticsearch:
        return Elasticsearch(self.ep.elasticsearch_url, request_timeout=30)

    def sql(self, statement: str, *args: object) -> list[tuple]:
        with psycopg.connect(self.ep.pg_admin_dsn(self.ep.pg_database), autocommit=True) as conn:
            cursor = conn.execute(statement, args)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []


def config_text(ep: Endpoints, **overrides: str) -> str:
    table = {
        "environment": "staging", "elasticsearch_url": ep.elasticsearch_url, "s3_endpoint": ep.s3_endpoint,
        "s3_bucket": ep.bucket, "s3_access_key_env": "STAGING_S3_ACCESS_KEY",
        "s3_secret_key_env": "STAGING_S3_SECRET_KEY", "postgres_dsn_env": "STAGING_PG_DSN",
        "dump_password_env": "STAGING_DB_PASSWORD", "repository": "fs", "fs_repository_dir": str(ep.es_repo_root),
        **overrides}
    return "[target]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())


def staging_environment(paths, tmp_path_factory) -> Iterator[Staging]:
    stack = LocalStack(paths, stack_settings_from_env(), stack_name=f"pytest-staging-{uuid.uuid4().hex[:6]}")
    ep = stack.up()
    try:
        assert ep.es_repo_root is not None
        bindir = find_pg_bindir()
        env = {**os.environ, "ES_URL": ep.elasticsearch_url, "S3_ENDPOINT": ep.s3_endpoint, "S3_BUCKET": ep.bucket,
               "S3_ACCESS_KEY": ep.s3_access_key, "S3_SECRET_KEY": ep.s3_secret_key, "PGHOST": ep.pg_host,
               "PGPORT": str(ep.pg_port), "PGUSER": ep.pg_user, "PGPASSWORD": ep.pg_password,
               "PGDATABASE": ep.pg_database, "DB_PASSWORD": DUMP_PASSWORD,
               "REPO_DIR": str(ep.es_repo_root / "platform"),
               "PATH": f"{bindir}:{os.environ['PATH']}" if bindir else os.environ["PATH"],
               # What the [target] table names: the secrets, from the environment.
               "STAGING_S3_ACCESS_KEY": ep.s3_access_key, "STAGING_S3_SECRET_KEY": ep.s3_secret_key,
               "STAGING_PG_DSN": ep.pg_admin_dsn(ep.pg_database), "STAGING_DB_PASSWORD": DUMP_PASSWORD}
        config = tmp_path_factory.mktemp("staging") / "staging.toml"
        config.write_text(config_text(ep))
        staging = Staging(stack, ep, env, config, ObjectStore(ep.s3_endpoint, ep.s3_access_key, ep.s3_secret_key,
                                                              ep.bucket))
        staging.job("schema")
        for tenant, (indices, docs) in TENANTS.items():
            staging.job("tenant", tenant, str(indices), str(docs))
        for tenant in TENANTS:
            staging.job("snapshot", tenant, "nightly-2026.11.26-0200")
        staging.job("dump", "all")
        for org in ("org1", "org2"):
            staging.job("dump", org)
        yield staging
    finally:
        stack.down(purge=True)


