"""Metrics between drills, for the team's monitoring (`drdrill metrics`): per tenant the age of
its newest complete snapshot and dump (the backup exposure a disaster now would cost), their
sizes, how many recovery points the retention window holds, and the last drill's outcome.
Read-only: the bucket is only listed and read. Written in the Prometheus text format for the
node exporter's textfile collector (atomically, so it never reads half a file)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from drdrill.adapters.s3 import ObjectStore
from drdrill.backups import catalog
from drdrill.core.history import HistoryEntry
from drdrill.core.layout import ALL_SCOPE, Tenant

RETENTION_DAYS = 7


@dataclass(frozen=True)
class TenantExposure:
    tenant: Tenant
    snapshot_age_s: float | None  # None: no complete snapshot at all
    snapshot_points: int  # complete snapshots within the retention window
    repository_bytes: int
    dump_age_s: float | None  # the tenant's organisation's newest complete dump (else the whole database's)
    dump_bytes: int
    dump_points: int

    def outside(self, rpo_seconds: float) -> bool:
        return any(age is None or age > rpo_seconds for age in (self.snapshot_age_s, self.dump_age_s))


def exposures(store: ObjectStore, now: datetime) -> list[TenantExposure]:
    window = now - timedelta(days=RETENTION_DAYS)
    dumps = [e for e in catalog.metadata_entries(store) if e.complete]
    sizes: dict[str, int] = {}
    for obj in store.list(""):
        top = "/".join(obj.key.split("/")[:2]) + "/"
        sizes[top] = sizes.get(top, 0) + obj.size
    out = []
    for tenant in catalog.discover_tenants(store):
        snaps = [s for s in catalog.tenant_snapshots(store, tenant) if s.complete and s.started_at]
        newest = max((s.started_at for s in snaps if s.started_at), default=None)
        mine = [d for d in dumps if d.scope == tenant.org_id] or [d for d in dumps if d.scope == ALL_SCOPE]
        dump = max(mine, key=lambda d: d.taken_at, default=None)
        out.append(TenantExposure(
            tenant=tenant, snapshot_age_s=(now - newest).total_seconds() if newest else None,
            snapshot_points=sum(1 for s in snaps if s.started_at and s.started_at >= window),
            repository_bytes=sizes.get(tenant.repo_prefix, 0),
            dump_age_s=(now - dump.taken_at).total_seconds() if dump else None, dump_bytes=dump.size if dump else 0,
            dump_points=sum(1 for d in mine if d.taken_at >= window)))
    return out


def write_textfile(path: Path, tenants: list[TenantExposure], last: HistoryEntry | None, rpo_seconds: float) -> None:
    registry = CollectorRegistry()
    labels = ["org_id", "namespace"]

    def gauge(name: str, doc: str, per_tenant: bool = True) -> Gauge:
        return Gauge(f"drdrill_{name}", doc, labels if per_tenant else [], registry=registry)

    snapshot_age = gauge("snapshot_age_seconds", "Age of the tenant's newest complete snapshot (-1: none)")
    dump_age = gauge("dump_age_seconds", "Age of the newest complete metadata dump covering the tenant (-1: none)")
    repo_bytes = gauge("repository_bytes", "Bytes of the tenant's snapshot repository in the bucket")
    dump_bytes = gauge("dump_bytes", "Bytes of the newest metadata dump covering the tenant")
    snapshot_points = gauge("snapshot_recovery_points", f"Complete snapshots in the last {RETENTION_DAYS} days")
    dump_points = gauge("dump_recovery_points", f"Complete dumps in the last {RETENTION_DAYS} days")
    outside = gauge("outside_rpo", "1 when the tenant's newest complete backup is older than the RPO")
    for t in tenants:
        ids = (t.tenant.org_id, t.tenant.namespace)
        snapshot_age.labels(*ids).set(-1 if t.snapshot_age_s is None else t.snapshot_age_s)
        dump_age.labels(*ids).set(-1 if t.dump_age_s is None else t.dump_age_s)
        repo_bytes.labels(*ids).set(t.repository_bytes)
        dump_bytes.labels(*ids).set(t.dump_bytes)
        snapshot_points.labels(*ids).set(t.snapshot_points)
        dump_points.labels(*ids).set(t.dump_points)
        outside.labels(*ids).set(1 if t.outside(rpo_seconds) else 0)
    gauge("rpo_objective_seconds", "The RPO objective the ages are judged against", per_tenant=False).set(rpo_seconds)
    if last is not None:
        verdict = Gauge("drdrill_last_drill_passed", "1 when the newest drill of the history passed",
                        registry=registry)
        verdict.set(1 if last.verdict == "passed" else 0)
        for name, key in (("rto", "rto_seconds"), ("rpo", "rpo_seconds")):
            value = last.summary.get(key)
            if isinstance(value, int | float):
                Gauge(f"drdrill_last_drill_{name}_seconds", f"Achieved {name.upper()} of the newest drill",
                      registry=registry).set(value)
        if last.finished_at:
            from drdrill.core.clock import from_iso

            Gauge("drdrill_last_drill_timestamp_seconds", "When the newest drill finished (Unix time)",
                  registry=registry).set(from_iso(last.finished_at).timestamp())
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # a temporary file renamed into place
