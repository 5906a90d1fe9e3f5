"""When a drill step fails, find out why, the way the runbook's troubleshooting does: is
MinIO reachable, does Elasticsearch answer, does ``pg_isready`` answer, can the platform's
user read ``tenant_containers``. Every probe is bounded by a short timeout and goes through
the service's adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from drdrill.adapters.postgres import TENANT_TABLE
from drdrill.errors import BackupIntegrityError, DecryptionError
from drdrill.targets.base import ReportsNodes

if TYPE_CHECKING:
    from drdrill.adapters.platform import Platform
    from drdrill.targets.base import DrillTarget

PROBE_TIMEOUT_S = 3


@dataclass
class Probe:
    check: str
    ok: bool
    result: str

    def to_dict(self) -> dict[str, object]:
        return {"check": self.check, "ok": self.ok, "result": self.result}


@dataclass
class Diagnosis:
    cause: str
    proof: str
    probes: list[Probe] = field(default_factory=list)
    # The probe that named the cause (None: the cause is the failure itself, e.g. a bad backup).
    failed_probe: Probe | None = None

    @property
    def text(self) -> str:
        return f"{self.cause} (proved by: {self.proof})"


def _process(target: DrillTarget | None, service: str, label: str) -> list[Probe]:
    if target is None:
        return []
    state = target.process_state(service)
    return [Probe(f"{label} process", state in ("running", "n/a"), state)]


def _minio(platform: Platform, target: DrillTarget | None) -> list[Probe]:
    ok, state = platform.store.probe(PROBE_TIMEOUT_S)
    probes = [Probe(f"MinIO health at {platform.store.endpoint}/minio/health/ready", ok, state)]
    probes += _process(target, "minio", "MinIO")
    if ok:
        listed, result = platform.store.can_list()
        probes.append(Probe(f"list bucket {platform.store.bucket} with the platform's credentials", listed, result))
    return probes


def _elasticsearch(platform: Platform, target: DrillTarget | None) -> list[Probe]:
    """Most specific first: a dead or paused process, a full data disk, then a shard Elasticsearch cannot place
    (its own explanation, e.g. a disk watermark), then overall health."""
    probes = _process(target, "elasticsearch", "Elasticsearch")
    disk = target.data_disk("elasticsearch") if target is not None else None
    if disk is not None:  # a full data disk hangs Elasticsearch: say so before "not answering"
        probes.append(Probe("Elasticsearch data disk has free space (df)", not disk.full, disk.describe()))
    ok, health = platform.cluster.probe(PROBE_TIMEOUT_S)
    if health.startswith("cluster health"):  # it answered: ask why anything is unassigned
        problem = platform.cluster.allocation_problem()
        probes.append(Probe("every shard can be allocated (_cluster/allocation/explain)", problem is None,
                            problem or "no unassigned shard"))
    probes.append(Probe(f"Elasticsearch health at {platform.cluster.url}", ok, health))
    return probes


def _postgres(platform: Platform, target: DrillTarget | None) -> list[Probe]:
    conn = platform.db.conn
    ready, state = platform.db.pg_isready(PROBE_TIMEOUT_S)
    probes = [Probe(f"pg_isready -h {conn.host} -p {conn.port}", ready, state)]
    probes += _process(target, "postgres", "PostgreSQL")
    if ready:
        readable, result = platform.db.can_read(TENANT_TABLE)
        probes.append(Probe(f"{conn.user} can read {TENANT_TABLE} (SELECT * ... LIMIT 1)", readable, result))
    return probes


PROBE_GROUPS: tuple[Callable[[Platform, DrillTarget | None], list[Probe]], ...] = (_minio, _elasticsearch,
                                                                                   _postgres)


def diagnose(platform: Platform | None, target: DrillTarget | None, phase: str, exc: BaseException) -> Diagnosis:
    """Name the cause and the check that proved it. A backup that is itself bad is diagnosed
    by the integrity check that caught it, once the services are shown to be healthy."""
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    if platform is None:
        return Diagnosis(message, "no platform to probe")
    probes: list[Probe] = []
    if isinstance(target, ReportsNodes):  # a node that is down explains every service on it: first
        try:
            probes += [Probe(check, ok, result) for check, ok, result in target.node_probes()]
        except Exception as probe_exc:  # a probe must never mask the failure it investigates
            probes.append(Probe("nodes", False, f"probe failed: {probe_exc}"))
    for group in PROBE_GROUPS:
        try:
            probes += group(platform, target)
        except Exception as probe_exc:  # a probe must never mask the failure it investigates
            probes.append(Probe(group.__name__.strip("_"), False, f"probe failed: {probe_exc}"))
    # A backup that was downloaded but is bad is its own cause, whatever else is wrong.
    if isinstance(exc, DecryptionError):
        return Diagnosis(f"the dump cannot be decrypted: {message}", "decryption of the downloaded dump", probes)
    if isinstance(exc, BackupIntegrityError):
        return Diagnosis(f"the backup is damaged: {message}", "integrity check of the backup object", probes)
    failing = next((p for p in probes if not p.ok), None)
    if failing is not None:
        return Diagnosis(f"{failing.check.split(' at ')[0].split(' (')[0]} failed: {failing.result}",
                         f"{failing.check} -> {failing.result}", probes, failing)
    return Diagnosis(message, f"{phase} step; MinIO, Elasticsearch and PostgreSQL all answered", probes)
