"""Benchmark ``live`` (``--only live``): the restore test of a platform's own backups on a staging
environment filled the platform's way, quiet and busy, in one run.

A local stack of its own stands in for staging: 6 tenants × 20 indices (120 indices) filled and
backed up with ``tests/platform/platform_job.sh`` (psql, curl, Elasticsearch's snapshot API,
``pg_dump | openssl enc``). ``drdrill run --target live`` then runs alternately on the quiet
environment and while the platform writes a document every 0.5 s into one of its indices
(Q B B Q Q B …): wall time and the restore test's RTO per condition (medians), and their ratio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import median, progress, ratio, table
from bench.context import Bench
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import load_paths, stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "platform" / "platform_job.sh"
TENANTS, INDICES, DOCS = 6, 20, 200
PASSWORD = "bench dump password"  # noqa: S105 - a throw-away stack's dump password


def _job(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(["bash", str(JOB), *args], env=env, capture_output=True, text=True, timeout=600,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"platform job {args[0]} failed: {result.stderr[-500:]}")
    return result.stdout.strip()


def _fill(env: dict[str, str], tenants: int, indices: int, docs: int) -> list[str]:
    _job(env, "schema")
    names = [f"org{1 + n // 2}/ns{1 + n % 2}" for n in range(tenants)]
    for tenant in names:
        _job(env, "tenant", tenant, str(indices), str(docs))
    for tenant in names:
        _job(env, "snapshot", tenant, "nightly-bench-0200")
    _job(env, "dump", "all")
    for org in sorted({t.split("/")[0] for t in names}):
        _job(env, "dump", org)
    return names


def _run(env: dict[str, str], config: Path, workdir: Path, busy_index: str | None, es_url: str) -> dict[str, Any]:
    stop = threading.Event()
    written: list[str] = []

    def platform_writes() -> None:
        from elasticsearch import Elasticsearch

        es = Elasticsearch(es_url, request_timeout=30)
        try:
            while not stop.wait(0.5):
                written.append(es.index(index=str(busy_index), document={"busy": True}, refresh=True)["_id"])
        finally:
            es.close()

    writer = threading.Thread(target=platform_writes, daemon=True) if busy_index else None
    if writer is not None:
        writer.start()
    report_dir = workdir / f"report-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "drdrill", "-q", "run", "--target", "live", "--config",
                                 str(config), "--report-dir", str(report_dir), "--project-dir", str(workdir)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=10)
    wall = time.monotonic() - started
    report = json.loads((report_dir / "report.json").read_text()) if (report_dir / "report.json").exists() else {}
    phases = {p["name"]: p["duration_seconds"] for p in report.get("phases", [])}
    return {"exit": result.returncode, "verdict": report.get("verdict"), "wall_s": round(wall, 3),
            "rto_s": (report.get("achieved") or {}).get("rto_seconds"), "writes": len(written),
            "restore_snapshots_s": phases.get("restore-snapshots"), "tail": (result.stdout + result.stderr)[-800:]
            if result.returncode != 0 else ""}


def measure(bench: Bench) -> dict[str, Any]:
    smoke = bench.options.smoke
    tenants, indices, docs = (2, 2, 10) if smoke else (TENANTS, INDICES, DOCS)
    stack = LocalStack(load_paths(), stack_settings_from_env(), stack_name=f"bench-staging-{uuid.uuid4().hex[:6]}")
    workdir = bench.options.workdir / "live"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        ep = stack.up()
        assert ep.es_repo_root is not None  # the local stack's path.repo
        bindir = find_pg_bindir()
        env = {**os.environ, "ES_URL": ep.elasticsearch_url, "S3_ENDPOINT": ep.s3_endpoint, "S3_BUCKET": ep.bucket,
               "S3_ACCESS_KEY": ep.s3_access_key, "S3_SECRET_KEY": ep.s3_secret_key, "PGHOST": ep.pg_host,
               "PGPORT": str(ep.pg_port), "PGUSER": ep.pg_user, "PGPASSWORD": ep.pg_password,
               "PGDATABASE": ep.pg_database, "DB_PASSWORD": PASSWORD, "REPO_DIR": str(ep.es_repo_root / "platform"),
               "PATH": f"{bindir}:{os.environ['PATH']}" if bindir else os.environ["PATH"],
               "BENCH_S3_ACCESS": ep.s3_access_key, "BENCH_S3_SECRET": ep.s3_secret_key,
               "BENCH_PG_DSN": ep.pg_admin_dsn(ep.pg_database), "BENCH_DB_PASSWORD": PASSWORD}
        progress(f"live: filling staging with {tenants} tenants x {indices} indices x {docs} documents")
        fill_started = time.monotonic()
        names = _fill(env, tenants, indices, docs)
        fill_s = time.monotonic() - fill_started
        config = workdir / "staging.toml"
        config.write_text("[target]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in {
            "environment": "staging", "elasticsearch_url": ep.elasticsearch_url, "s3_endpoint": ep.s3_endpoint,
            "s3_bucket": ep.bucket, "s3_access_key_env": "BENCH_S3_ACCESS", "s3_secret_key_env": "BENCH_S3_SECRET",
            "postgres_dsn_env": "BENCH_PG_DSN", "dump_password_env": "BENCH_DB_PASSWORD", "repository": "fs",
            "fs_repository_dir": str(ep.es_repo_root)}.items()))
        org, ns = names[-1].split("/")
        busy_index = f"logs-{org}-{ns}-1"
        order = ["quiet", "busy", "busy", "quiet"] * max(1, (bench.options.repeat + 1) // 2)
        runs: dict[str, list[dict[str, Any]]] = {"quiet": [], "busy": []}
        for condition in order[: 2 * bench.options.repeat]:
            progress(f"live: restore test, {condition}")
            runs[condition].append(_run(env, config, workdir, busy_index if condition == "busy" else None,
                                        ep.elasticsearch_url))
    finally:
        stack.down(purge=True)
    ok = all(r["exit"] == 0 for rs in runs.values() for r in rs)
    summary = {c: {"wall_s": median([r["wall_s"] for r in rs]), "rto_s": median([r["rto_s"] or 0 for r in rs]),
                   "restore_snapshots_s": median([r["restore_snapshots_s"] or 0 for r in rs]), "n": len(rs)}
               for c, rs in runs.items()}
    return {"status": "ok" if ok else "failed", "shape": {"tenants": tenants, "indices_per_tenant": indices,
                                                          "docs_per_index": docs},
            "fill_seconds": round(fill_s, 1), "runs": runs, "summary": summary,
            "busy_over_quiet_wall": ratio(summary["busy"]["wall_s"], summary["quiet"]["wall_s"]),
            "busy_over_quiet_rto": ratio(summary["busy"]["rto_s"], summary["quiet"]["rto_s"])}


def render(result: dict[str, Any]) -> str:
    shape = result["shape"]
    rows = [[c, s["n"], s["wall_s"], s["rto_s"], s["restore_snapshots_s"]] for c, s in result["summary"].items()]
    rows.append(["busy / quiet", "", result["busy_over_quiet_wall"], result["busy_over_quiet_rto"], ""])
    title = (f"live: restore test on staging ({shape['tenants']} tenants x {shape['indices_per_tenant']} indices x "
             f"{shape['docs_per_index']} docs; filled in {result['fill_seconds']}s; status {result['status']})")
    return table(title, ["condition", "runs", "wall s (median)", "RTO s (median)", "restore-snapshots s"], rows)
