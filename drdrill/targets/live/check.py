"""`drdrill target check`: what each endpoint of a live environment answers to what a restore
test needs (versions, reading the bucket and snapshots, es_metadata, a scratch database)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drdrill.adapters.postgres import MetadataDb, PgConn
from drdrill.errors import HarnessError
from drdrill.targets.live.target import LiveTarget


@dataclass(frozen=True)
class Capability:
    """One thing `drdrill target check` asked an endpoint, and its answer."""

    endpoint: str
    check: str
    ok: bool
    detail: str


def check_target(target: LiveTarget) -> list[Capability]:
    """Connect to each endpoint and ask what a restore test needs: versions, reading the
    bucket, reading snapshots, reading es_metadata and creating a scratch database."""
    settings = target.settings
    platform = target.platform(request_timeout_s=10)
    out: list[Capability] = []

    def ask(endpoint: str, check: str, action: Any) -> Any:
        try:
            value = action()
        except Exception as exc:  # the answer is the point: any failure is reported, not raised
            text = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
            out.append(Capability(endpoint, check, False, text))
            return None
        detail = value if isinstance(value, str) else "ok"
        out.append(Capability(endpoint, check, True, detail))
        return value

    es_url, s3_endpoint = target.endpoint_urls()
    via = f" (port-forward to {settings.kubernetes.namespace})" \
        if settings.kubernetes and not settings.kubernetes.in_cluster else ""
    es = f"elasticsearch {es_url}{via}"
    ask(es, "version", lambda: ", ".join(f"{k} {v}" for k, v in platform.cluster.compatibility().items()))
    ask(es, "list snapshot repositories", lambda: f"{len(platform.cluster.repositories())} registered")
    s3 = f"s3 {s3_endpoint}{via} bucket {settings.s3_bucket}"
    ask(s3, "list the bucket", lambda: f"{sum(1 for _ in platform.store.list(''))} objects")
    from drdrill.backups import catalog
    ask(s3, "find tenant repositories", lambda: f"{len(catalog.discover_tenants(platform.store))} tenant paths")
    from drdrill.core.layout import DRILL_MARKER_KEY
    ask(s3, "drill-environment marker", lambda: "present" if platform.store.exists(DRILL_MARKER_KEY) else
        "absent (destructive drills refused)")
    pg = f"postgres {platform.db.conn!r}"
    ask(pg, "version", platform.db.server_version)
    ask(pg, "read tenant_containers", lambda: f"{platform.db.table_count()} rows")
    if settings.postgres_scratch_dsn is not None:
        ask(pg, "scratch database", lambda: MetadataDb(PgConn.from_dsn(target.secrets.postgres_scratch_dsn or ""),
                                                       bindir=target.pg_bindir).server_version() and "reachable")
    else:
        ask(pg, "may create a scratch database", lambda: _may_create_database(platform.db))
    if settings.repository == "fs":
        root = settings.fs_repository_dir
        ask(f"fs {root}", "writable repository directory", lambda: _writable(root))
    platform.close()
    return out


def _may_create_database(db: MetadataDb) -> str:
    if not db.may_create_database():
        raise HarnessError(f"role {db.conn.user} may not create databases",
                           hint="grant CREATEDB, or give postgres_scratch_dsn_env")
    return "yes (CREATEDB)"


def _writable(root: Path | None) -> str:
    if root is None or not root.is_dir():
        raise HarnessError(f"{root} is not a directory here", hint="mount the nodes' path.repo at this path")
    if not os.access(root, os.W_OK):
        raise HarnessError(f"{root} is not writable by drdrill")
    return "ok"
