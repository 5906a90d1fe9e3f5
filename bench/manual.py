"""The runbook's full recovery done "by hand": a plain script of REST calls, ``openssl`` and
``psql``, the baseline the harness-overhead benchmark compares drdrill's drill with.

Same data, same backup (the platform's nightly job, drdrill's reference procedure, used by both
arms), same disaster (site loss), same redeployment (runbook steps 1-2: the local target has one
way to deploy). Then, as the runbook's steps 3-5:

* ``mc cp`` of the newest ``metadata/all`` dump (boto3 ``download_file``), ``openssl enc -d
  -aes-256-cbc -salt`` (password from the environment, ``-pass env:``), ``psql < dump``;
* per tenant, ``restore-from-snapshot.sh``: on the local target Elasticsearch has no
  ``repository-s3``, so the tenant's prefix is mirrored to an ``fs`` repository first with
  drdrill's ``repo_sync.fetch`` (the same copy drdrill's restore does), then ``PUT _snapshot``,
  ``GET _snapshot/<repo>/_all``, ``POST _restore?wait_for_completion=true``, ``GET
  _cluster/health?wait_for_status=green``;
* ``curl _cat/indices?v`` and ``psql -c "SELECT COUNT(*) FROM tenant_containers"``.

Every step is timed. Whether the restore worked is checked after T_recovered (untimed): a
baseline that silently restored nothing would make any harness look slow.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import progress, stopwatch, utc_now
from bench.context import Bench
from bench.drills import DrillShape, make_tenants
from drdrill.adapters.platform import Endpoints, Platform
from drdrill.backups import repo_sync
from drdrill.backups.seed import DataSpec, seed_tenant
from drdrill.backups.take import backup_set
from drdrill.core.layout import Tenant
from drdrill.errors import DrdrillError
from drdrill.targets.base import SITE_SERVICES

PASSWORD_ENV = "DRDRILL_BENCH_DB_PASSWORD"  # noqa: S105 - the variable's name, not a password
TIMEOUT_S = 1800


@dataclass
class ManualResult:
    shape: DrillShape
    ok: bool
    problems: list[str]
    wall_s: float = 0.0
    rto_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Steps:
    """Times named steps, grouped into phases named like drdrill's timeline phases."""

    def __init__(self) -> None:
        self.phases: dict[str, float] = {}
        self.steps: dict[str, float] = {}

    def add(self, phase: str, step: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds
        self.steps[step] = self.steps.get(step, 0.0) + seconds


def rest(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """One REST call, as curl would make it; JSON in and out (text for _cat)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - loopback http
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
        raw = response.read().decode()
    return json.loads(raw) if raw.lstrip().startswith(("{", "[")) else raw


def _psql(ep: Endpoints, *args: str, stdin: Path | None = None) -> str:
    psql = shutil.which("psql") or "psql"
    argv = [psql, "-h", ep.pg_host, "-p", str(ep.pg_port), "-U", ep.pg_user, "-d", ep.pg_database, "-X", "-q",
            "-v", "ON_ERROR_STOP=1", *args]
    env = dict(os.environ, PGPASSWORD=ep.pg_password)  # never on the command line
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as source:
        done = subprocess.run(argv, stdin=source, capture_output=True, env=env, check=False, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout.decode()


def _restore_metadata(platform: Platform, ep: Endpoints, password: str, tmp: Path, steps: Steps) -> None:
    with stopwatch() as took:
        keys = sorted(o.key for o in platform.store.list("metadata/all/") if o.key.endswith(".sql.enc"))
        platform.store.client.download_file(ep.bucket, keys[-1], str(tmp / "metadata_backup.sql.enc"))
    steps.add("restore-metadata", "mc cp (boto3 download)", took())
    with stopwatch() as took:
        done = subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-salt", "-in",
                               str(tmp / "metadata_backup.sql.enc"), "-out", str(tmp / "metadata_backup.sql"),
                               "-pass", f"env:{PASSWORD_ENV}"], capture_output=True, check=False,
                              env=dict(os.environ, **{PASSWORD_ENV: password}))
    if done.returncode != 0:
        raise RuntimeError(f"openssl failed: {done.stderr.decode(errors='replace').strip()}")
    steps.add("restore-metadata", "openssl enc -d", took())
    with stopwatch() as took:
        _psql(ep, stdin=tmp / "metadata_backup.sql")
    steps.add("restore-metadata", "psql < dump", took())


def _restore_tenant(platform: Platform, ep: Endpoints, tenant: Tenant, tag: str, steps: Steps) -> None:
    assert platform.repo_root is not None
    es, repo = ep.elasticsearch_url, f"manual-{tenant.org_id}.{tenant.namespace}"
    location = platform.repo_root / f"manual-{tag}" / tenant.org_id / tenant.namespace
    with stopwatch() as took:
        repo_sync.fetch(platform.store, tenant.repo_prefix, location, owner=repo_sync.owner_of(platform.repo_root))
    steps.add("restore-snapshots", "mirror prefix (repo_sync.fetch)", took())
    with stopwatch() as took:
        rest("PUT", f"{es}/_snapshot/{repo}", {"type": "fs", "settings": {"location": str(location),
                                                                          "readonly": True}})
    steps.add("restore-snapshots", "PUT _snapshot", took())
    with stopwatch() as took:
        snaps = rest("GET", f"{es}/_snapshot/{repo}/_all")["snapshots"]
        newest = max((s for s in snaps if s["state"] == "SUCCESS"), key=lambda s: s["start_time_in_millis"])
    steps.add("restore-snapshots", "GET _snapshot/_all", took())
    with stopwatch() as took:
        rest("POST", f"{es}/_snapshot/{repo}/{newest['snapshot']}/_restore?wait_for_completion=true",
             {"indices": f"{tenant.index_prefix}*", "include_global_state": False})
    steps.add("restore-snapshots", "POST _restore", took())
    with stopwatch() as took:
        health = rest("GET", f"{es}/_cluster/health/{tenant.index_prefix}*?wait_for_status=green&timeout=600s")
    steps.add("restore-snapshots", "GET _cluster/health green", took())
    if health.get("status") != "green":
        raise RuntimeError(f"{tenant}: cluster health {health.get('status')} after the restore")


def _check(cat: str, expected_docs: dict[str, int], rows: str, expected_rows: int) -> list[str]:
    """Did the by-hand recovery bring the data back? (after T_recovered, untimed)"""
    lines = [line.split() for line in cat.strip().splitlines()]
    column = lines[0].index("docs.count")
    seen = {cols[2]: int(cols[column]) for cols in lines[1:] if len(cols) > column}
    wrong = [f"{i}: {seen.get(i)} docs, expected {n}" for i, n in expected_docs.items() if seen.get(i) != n]
    if int(rows.strip() or -1) != expected_rows:
        wrong.append(f"tenant_containers has {rows.strip()} rows, expected {expected_rows}")
    return wrong


def _setup(bench: Bench, tenants: list[Tenant], shape: DrillShape, password: str,
           steps: Steps) -> dict[str, int]:
    platform = bench.platform()
    expected: dict[str, int] = {}
    with stopwatch() as took:
        for tenant in tenants:
            seeded = seed_tenant(platform.cluster, platform.db, tenant,
                                 DataSpec(indices_per_tenant=shape.indices, docs_per_index=shape.docs_per_index))
            expected.update(seeded.docs_by_index)
    steps.add("prepare", "seed", took())
    with stopwatch() as took:
        backup_set(platform, tenants, utc_now(), password.encode(), progress=lambda _m: None)
    steps.add("backup", "nightly backup (drdrill.backups.take.backup_set)", took())
    platform.close()
    return expected


def _recover(bench: Bench, tenants: list[Tenant], shape: DrillShape, password: str, tag: str, tmp: Path,
             steps: Steps, result: ManualResult) -> None:
    target = bench.ensure_stack()
    expected = _setup(bench, tenants, shape, password, steps)
    expected_rows = int(_psql(target.stack.endpoints(), "-A", "-t", "-c",
                              "SELECT COUNT(*) FROM tenant_containers").strip())
    with stopwatch() as rto:
        with stopwatch() as took:
            target.destroy(SITE_SERVICES)
        steps.add("disaster", "kill Elasticsearch and PostgreSQL, delete their data", took())
        with stopwatch() as took:
            ep = target.redeploy(SITE_SERVICES)
        steps.add("deploy-services", "redeploy (runbook steps 1-2)", took())
        platform = target.platform()
        _restore_metadata(platform, ep, password, tmp, steps)
        for tenant in tenants:
            _restore_tenant(platform, ep, tenant, tag, steps)
        with stopwatch() as took:
            cat = rest("GET", f"{ep.elasticsearch_url}/_cat/indices?v")
            rows = _psql(ep, "-A", "-t", "-c", "SELECT COUNT(*) FROM tenant_containers")
        steps.add("verify", "_cat/indices + SELECT COUNT(*)", took())
    result.rto_s = rto()
    result.problems += _check(cat, expected, rows, expected_rows)
    platform.close()


def run_manual(bench: Bench, shape: DrillShape, label: str) -> ManualResult:
    """Seed and back up as the platform would, lose the site, and recover by hand."""
    bench.reset()
    tag = bench.next_tag("m")
    tenants = make_tenants(tag, shape.tenants)
    password = secrets.token_urlsafe(24)
    steps, result = Steps(), ManualResult(shape, ok=True, problems=[])
    progress(f"by hand {label}: {shape.describe()}")
    with stopwatch() as wall, tempfile.TemporaryDirectory(prefix="bench-manual-", dir=bench.options.workdir) as tmp:
        try:
            _recover(bench, tenants, shape, password, tag, Path(tmp), steps, result)
        except (DrdrillError, OSError, RuntimeError, KeyError, ValueError) as exc:  # HTTPError is an OSError
            result.problems.append(f"{type(exc).__name__}: {exc}")
    result.wall_s, result.phases, result.steps = wall(), steps.phases, steps.steps
    result.ok = not result.problems
    state = "ok" if result.ok else "FAILED: " + "; ".join(result.problems[:2])
    progress(f"by hand {label}: wall {result.wall_s:.1f}s, RTO {result.rto_s or float('nan'):.1f}s, {state}")
    return result
