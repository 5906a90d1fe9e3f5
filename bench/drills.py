"""Full-site drills through drdrill's Python API (the same steps as features/full_site_recovery),
measured from the drill's own timeline: wall time, RTO, phase durations, bytes restored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.common import progress, stopwatch
from bench.context import Bench
from drdrill.backups.seed import DataSpec
from drdrill.core import layout
from drdrill.core.forecast import RestoreSample
from drdrill.core.layout import Tenant
from drdrill.drill.measurement import restore_sample
from drdrill.drill.session import Drill, DrillOutcome, DrillSettings
from drdrill.errors import DrdrillError
from drdrill.targets.base import DrillTarget


@dataclass(frozen=True)
class DrillShape:
    tenants: int
    indices: int
    docs_per_index: int

    @property
    def docs(self) -> int:
        return self.tenants * self.indices * self.docs_per_index

    @property
    def shards(self) -> int:
        return self.tenants * (self.indices + 1)  # + the canary index

    def describe(self) -> str:
        return f"{self.tenants} tenant(s) × {self.indices} index(es) × {self.docs_per_index} docs"


@dataclass
class DrillResult:
    shape: DrillShape
    label: str
    drill_id: str
    ok: bool
    problems: list[str]
    wall_s: float
    rto_s: float | None = None
    rpo_s: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    post_backup_wait_s: float | None = None
    measure_s: float | None = None
    snapshot_bytes: int = 0
    dump_bytes: int = 0
    fetch_s: float = 0.0
    es_restore_s: float = 0.0
    metadata_restore_s: float = 0.0
    # The snapshot restore's wall time (tenants restore side by side: not fetch_s + es_restore_s).
    restore_wall_s: float | None = None
    concurrency: int | None = None
    # Bytes Elasticsearch recovered into the restored shards, by recovery type: SNAPSHOT (the
    # primaries, from the repository) and PEER (replicas copied from their primaries).
    recovered_bytes: dict[str, int] = field(default_factory=dict)
    replicas: int | None = None  # replica copies per restored shard
    # What the RTO forecast learns from this drill (drdrill.core.forecast).
    sample: RestoreSample | None = None
    reused_by: list[str] = field(default_factory=list)

    @property
    def harness_s(self) -> float | None:
        """What the drill costs outside the recovery window (seeding, canaries, backup, the
        post-backup window, measuring): wall time − RTO."""
        return None if self.rto_s is None else self.wall_s - self.rto_s

    @property
    def restored_bytes(self) -> int:
        """What the recovery reads back: every tenant's snapshot and the whole-database dump."""
        return self.snapshot_bytes + self.dump_bytes

    @property
    def restore_s(self) -> float:
        """The size-dependent part of the RTO: fetching and restoring snapshots and the dump."""
        return self.fetch_s + self.es_restore_s + self.metadata_restore_s

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(docs=self.shape.docs, harness_s=self.harness_s, restored_bytes=self.restored_bytes,
                    restore_s=self.restore_s)
        return data


def make_tenants(tag: str, count: int) -> list[Tenant]:
    """Fresh tenants laid out like the default drill's (org1/ns1, org1/ns2, org2/ns1, …)."""
    return [Tenant(f"{tag}-o{n // 2 + 1}", f"ns{n % 2 + 1}") for n in range(count)]


def _fill_from_outcome(result: DrillResult, outcome: DrillOutcome) -> None:
    result.rto_s = outcome.rto_seconds
    result.rpo_s = outcome.rpo.worst if outcome.rpo else None
    phases = outcome.timeline.phases
    result.phases = {}
    for ph in phases:
        if ph.duration_seconds is not None:
            result.phases[ph.name] = result.phases.get(ph.name, 0.0) + ph.duration_seconds
    backup = next((p for p in phases if p.name == "backup"), None)
    disaster = next((p for p in phases if p.name == "disaster"), None)
    if backup and disaster and backup.end_offset is not None:
        result.post_backup_wait_s = disaster.start_offset - backup.end_offset
    if outcome.backup is not None:
        result.snapshot_bytes = sum(s.size_bytes for s in outcome.backup.snapshots)
        result.dump_bytes = sum(m.size_bytes for m in outcome.backup.metadata if m.scope == layout.ALL_SCOPE)
    result.fetch_s = sum(r.fetch_seconds for r in outcome.snapshot_restores)
    result.es_restore_s = sum(r.restore_seconds for r in outcome.snapshot_restores)
    result.metadata_restore_s = sum(m.seconds for m in outcome.metadata_restores)
    result.restore_wall_s = outcome.snapshot_restore_wall_s
    result.recovered_bytes = {}
    for shard in (s for r in outcome.snapshot_restores for s in r.shards):
        result.recovered_bytes[shard.kind] = result.recovered_bytes.get(shard.kind, 0) + shard.bytes_recovered
    result.replicas = outcome.restore_settings.get("replicas")
    result.concurrency = outcome.restore_settings.get("concurrency")
    result.sample = restore_sample(outcome)
    result.problems += [f"{p.phase}: {p.kind}: {p.summary}" for p in outcome.problems]
    result.ok = result.ok and outcome.rto_seconds is not None and not outcome.problems


def new_drill(bench: Bench, shape: DrillShape, label: str, *, concurrency: int | None = None,
              target: DrillTarget | None = None) -> Drill:
    """A full-site drill of ``shape`` on an emptied platform, with fresh tenants; nothing run yet.
    ``target``: another target than the bench's shared local stack (emptied by its own heal)."""
    if target is None:
        target = bench.ensure_stack()
        bench.reset()
    else:
        target.heal()
    tag = bench.next_tag("d")
    settings = DrillSettings(tenants=make_tenants(tag, shape.tenants),
                             data=DataSpec(indices_per_tenant=shape.indices, docs_per_index=shape.docs_per_index),
                             restore_concurrency=concurrency or DrillSettings().restore_concurrency)
    progress(f"drill {label}: {shape.describe()}")
    return Drill(target, settings, drill_id=f"bench-{tag}", scenario=f"bench {label}", workdir=bench.options.workdir)


def run_drill(bench: Bench, shape: DrillShape, label: str,
              after_backup: Callable[[Drill], None] | None = None, *,
              concurrency: int | None = None, target: DrillTarget | None = None) -> DrillResult:
    """One full-site drill (prepare, backup, site loss, redeploy, restore, verify) on an empty
    platform with fresh tenants. A failed drill is returned with ``ok=False`` and no RTO.
    ``after_backup`` runs between the backup and the disaster (outside the drill's phases)."""
    drill = new_drill(bench, shape, label, concurrency=concurrency, target=target)
    result = DrillResult(shape, label, drill.drill_id, ok=True, problems=[], wall_s=0.0)
    with stopwatch() as took:
        try:
            drill.prepare()
            drill.take_backup()
            if after_backup is not None and drill.backup is not None:
                after_backup(drill)
            drill.disaster("site loss")
            drill.deploy()
            drill.restore_metadata()
            drill.restore_snapshots()
            drill.verify()
        except DrdrillError as exc:
            result.ok = False
            result.problems.append(f"{type(exc).__name__}: {exc.one_line()}")
        finally:
            if drill.canary is not None and drill.canary_log is None:
                drill.canary_log = drill.canary.stop()
        with stopwatch() as measuring:
            outcome = drill.outcome()
        result.measure_s = measuring()
    result.wall_s = took()
    _fill_from_outcome(result, outcome)
    drill.platform.close()
    state = "ok" if result.ok else "FAILED: " + "; ".join(result.problems[:2])
    progress(f"drill {label}: wall {result.wall_s:.1f}s, RTO {result.rto_s or float('nan'):.1f}s, {state}")
    return result


def drill_for(bench: Bench, shape: DrillShape, label: str, *, benchmark: str) -> DrillResult:
    """A drill of ``shape``, reusing one this run already measured (recorded in ``reused_by``)."""
    known = bench.drills.get(shape)
    if known is not None and known.ok:
        known.reused_by.append(benchmark)
        progress(f"drill {label}: reusing the {shape.describe()} drill measured earlier in this run")
        return known
    result = run_drill(bench, shape, label)
    bench.drills[shape] = result
    return result
