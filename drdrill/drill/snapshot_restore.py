"""Runbook step 4 made strict and fast: every tenant's snapshot restored from the object store.

Per tenant: its newest complete snapshot (from the store's own catalogue), refused if it holds
another tenant's index; a fresh copy of its repository where the target mirrors repositories;
the repository registered read-only; the restore started; its primaries waited for (yellow),
then its replicas (green). Up to ``concurrency`` tenants are in flight, each in a worker of its
own that waits inside Elasticsearch (``_cluster/health?wait_for_status``), which answers the
moment the cluster state says so: the next tenant starts at once, and no poll loads the master
(before issue 24 one watcher polled ``_cat/shards``, each poll an indices-stats fan-out, every
50 ms, and a tenant's successor started only after the watcher's next sleep: bench/
restore_polling.py keeps that watcher for benchmark 7 to measure against). Between
waits the tenant is judged by the one rule for a complete restore (drdrill.core.completeness);
one whose shard cannot be allocated (a primary nowhere, a replica on no node but its primary's)
fails at once, with Elasticsearch's reason, rather than at the end of the wait."""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from drdrill.adapters.elasticsearch import ShardRecovery, ShardState
from drdrill.adapters.platform import Platform
from drdrill.backups import catalog, repo_sync
from drdrill.core.cluster_state import ClusterStateWork
from drdrill.core.completeness import (
    never_allocatable,
    primaries_started,
    primary_cannot_start,
    restore_again,
    restore_progress,
    unfinished_restore_recoveries,
)
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.drill.restore import restore_copies
from drdrill.drill.restore_losses import accepted_all_the_same, through_elections
from drdrill.errors import RecoveryFailure, RestoreFailed, ServiceError

log = logging.getLogger(__name__)

# The longest single wait inside Elasticsearch: how soon a failure (an unplaceable shard, the
# deadline) is looked for while nothing changes. Success ends a wait at once, whatever its length.
WAIT_SLICE_S = 1.0
# An unassigned primary is asked about after this long: Elasticsearch may only be queueing it
# (node_initial_primaries_recoveries), or it may never place it (a full disk).
ASK_AFTER_S = 3.0
PROGRESS_EVERY_S = 5.0
# A tenant's restore, step by step: its snapshot chosen from the store's catalogue, its repository
# copied out of the store (where the target mirrors it), registered, the snapshot read through it,
# the restore started, (drdrill's mark written), its primaries recovered, its replicas rebuilt,
# its recoveries read back. "primaries" and "replicas" end when the watcher saw them started.
STEPS = ("catalogue", "fetch", "register", "snapshot-info", "start", "mark", "primaries", "replicas", "recoveries")


@dataclass
class SnapshotRestore:
    tenant: str
    repository: str
    snapshot: str
    uuid: str
    indices: tuple[str, ...]
    fetched_bytes: int
    fetch_seconds: float
    restore_seconds: float
    shards_total: int
    shards_failed: int
    shards: list[ShardRecovery] = field(default_factory=list)
    health: str = "unknown"
    # The names the indices were restored under (the same, unless restored beside the originals).
    restored_as: tuple[str, ...] = ()
    # Seconds per step of this tenant's restore (STEPS), measured where drdrill waited for it.
    steps: dict[str, float] = field(default_factory=dict)
    # Replica copies of each shard restored beside its primary (the most of any of its indices;
    # 0 without replicas).
    replicas: int = 0
    # Indices restored a second time, with Elasticsearch's explanation: every copy of a primary
    # was lost with a node during the restore (drdrill.core.completeness.restore_again).
    restored_again: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TenantRestoreJob:
    """One tenant's restore: by default its newest complete snapshot, into a repository of its own."""

    tenant: Tenant
    snapshot: str | None = None
    repository: str | None = None
    # Written into each restored index's mapping _meta as soon as Elasticsearch accepted the
    # restore (drdrill's ownership mark on an environment it does not own).
    mark: dict[str, str] | None = None
    # Replicas of the copies when restored beside the originals (a restore test's copies).
    copy_replicas: int = 0


@dataclass
class TenantRestores:
    """What a restore of several tenants established: each tenant's result or its failure, in
    the order the tenants were given (whatever order they finished in)."""

    restored: list[SnapshotRestore]
    failed: list[tuple[Tenant, RecoveryFailure]]
    concurrency: int
    seconds: float
    # Of ``seconds``: until every tenant's primaries had started (or the tenant had failed); the
    # rest is the replicas being rebuilt from them.
    primaries_seconds: float | None = None
    # The cluster-state work Elasticsearch did meanwhile (drdrill.drill.restore_phase sets it).
    cluster_states: ClusterStateWork | None = None


def choose_snapshot(entries: list[catalog.SnapshotEntry], tenant: Tenant, name: str | None) -> catalog.SnapshotEntry:
    if name is not None:
        for entry in entries:
            if entry.name == name:
                if not entry.complete:
                    raise RestoreFailed(f"snapshot {name} of {tenant} is {entry.state}, not a complete recovery point")
                return entry
        raise RestoreFailed(f"snapshot {name} not found in {tenant}'s repository")
    newest = catalog.newest_complete_snapshot(entries)
    if newest is None:
        states = ", ".join(f"{e.name}={e.state}" for e in entries[-3:]) or "none at all"
        raise RestoreFailed(f"no complete snapshot in {tenant}'s repository ({states})",
                            hint=f"check the backup job for {tenant.repo_prefix}")
    return newest


@dataclass
class _Started:
    """A tenant whose restore Elasticsearch has accepted."""

    tenant: Tenant
    repository: str
    snapshot: catalog.SnapshotEntry
    restored: list[str]
    primaries: int
    fetch: repo_sync.SyncStats
    began: float
    deadline: float
    unassigned_since: dict[tuple[str, int], float] = field(default_factory=dict)
    # When Elasticsearch was last asked why a shard is unassigned: a shard queued behind the
    # node's initial-recovery limit is asked about every ASK_AFTER_S, not on every poll.
    asked_at: dict[tuple[str, int], float] = field(default_factory=dict)
    replica_asked_at: dict[tuple[str, int], float] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    primaries_at: float | None = None
    replicas: int = 0
    # How the restore was asked for, to ask again for an index lost with its node.
    rename_prefix: str | None = None
    copy_replicas: int = 0
    mark: dict[str, str] | None = None
    restored_again: dict[str, str] = field(default_factory=dict)


class _Steps:
    """Times a tenant's steps, one after another, into ``steps``."""

    def __init__(self, steps: dict[str, float]) -> None:
        self.steps, self.last = steps, time.monotonic()

    def done(self, name: str) -> float:
        now = time.monotonic()
        self.steps[name] = self.steps.get(name, 0.0) + now - self.last
        self.last = now
        return now


def _start(platform: Platform, job: TenantRestoreJob, drill_id: str, owners: TenantIndices, timeout_s: float,
           rename_prefix: str | None) -> _Started:
    """Everything before Elasticsearch recovers the shards: choose, check, fetch, register, start."""
    tenant = job.tenant
    steps: dict[str, float] = {}
    clock = _Steps(steps)
    chosen = choose_snapshot(catalog.tenant_snapshots(platform.store, tenant), tenant, job.snapshot)
    foreign = owners.foreign(tenant, chosen.indices)
    if foreign:
        raise RestoreFailed(f"snapshot {chosen.name} in {tenant}'s repository holds indices of another tenant: "
                            f"{', '.join(foreign[:3])}", hint=f"the repository at {tenant.repo_prefix} is not this "
                            "tenant's; check the backup job's path for each tenant")
    clock.done("catalogue")
    repository = job.repository or f"restore-{tenant.org_id}.{tenant.namespace}"
    fetch = repo_sync.SyncStats(0, 0, 0.0, 0)
    if platform.mirrors_repositories:
        assert platform.repo_root is not None
        location = restore_copies(platform.repo_root, drill_id) / tenant.org_id / tenant.namespace
        # Always a fresh copy: a blob left from an earlier restore must not stand in for
        # what MinIO holds now (the restore reads from the store of record only).
        shutil.rmtree(location, ignore_errors=True)
        fetch = repo_sync.fetch(platform.store, tenant.repo_prefix, location,
                                owner=repo_sync.owner_of(platform.repo_root))
        clock.done("fetch")
        platform.cluster.register_fs_repository(repository, str(location), readonly=True)
    else:
        platform.cluster.register_s3_repository(repository, platform.store.bucket, tenant.repo_prefix, readonly=True)
    clock.done("register")
    # What Elasticsearch itself says of the snapshot (the root blob has no shard counts).
    info = platform.cluster.snapshot(repository, chosen.name)
    if not info.complete:
        raise RestoreFailed(f"snapshot {chosen.name} of {tenant} is {info.state} with {info.shards_failed} failed "
                            f"shard(s) of {info.shards_total}", hint="not a usable recovery point")
    began = clock.done("snapshot-info")
    restored = [f"{rename_prefix or ''}{index}" for index in chosen.indices]
    asked_at_ms = int(time.time() * 1000)
    try:
        platform.cluster.start_restore(repository, chosen.name, list(chosen.indices), rename_prefix=rename_prefix,
                                       copy_replicas=job.copy_replicas)
    except ServiceError as exc:
        if not accepted_all_the_same(platform, repository, chosen.name, restored, asked_at_ms):
            raise
        log.warning("restore of %s: %s; yet every index is being restored from %s/%s: the request was applied "
                    "before it was sent again (a node was lost meanwhile)", tenant, exc.message, repository,
                    chosen.name)
    clock.done("start")
    if job.mark is not None:
        platform.cluster.mark_indices(restored, job.mark)
        clock.done("mark")
    return _Started(tenant, repository, chosen, restored, info.shards_total, fetch, began, began + timeout_s,
                    steps=steps, rename_prefix=rename_prefix, copy_replicas=job.copy_replicas, mark=job.mark)


def _finish(platform: Platform, started: _Started, done_at: float) -> SnapshotRestore:
    """The restore is complete by its shards' states: record what Elasticsearch says of them."""
    seconds = done_at - started.began
    recoveries = platform.cluster.recoveries(started.restored)
    started.steps["recoveries"] = time.monotonic() - done_at
    not_done = unfinished_restore_recoveries((f"{r.index}[{r.shard}]", r.stage, r.kind) for r in recoveries)
    if not_done:
        raise RestoreFailed(f"restore of {started.tenant} from {started.snapshot.name} incomplete: not done: "
                            f"{', '.join(not_done[:3])}", hint="see Elasticsearch's log and _cat/recovery")
    log.info("restored %s from %s: %d indices in %.1fs (+%.1fs fetch)", started.tenant, started.snapshot.name,
             len(started.restored), seconds, started.fetch.seconds)
    return SnapshotRestore(
        tenant=started.tenant.key, repository=started.repository, snapshot=started.snapshot.name,
        uuid=started.snapshot.uuid, indices=started.snapshot.indices, fetched_bytes=started.fetch.bytes,
        fetch_seconds=started.fetch.seconds, restore_seconds=seconds, shards_total=started.primaries,
        shards_failed=0, shards=recoveries, health="green", restored_as=tuple(started.restored),
        steps={name: round(value, 4) for name, value in started.steps.items()}, replicas=started.replicas,
        restored_again=dict(started.restored_again))


def _primaries_at(started: _Started, now: float) -> None:
    started.primaries_at = now
    started.steps["primaries"] = now - started.began - started.steps.get("start", 0.0) - started.steps.get("mark", 0.0)


def _count_replicas(started: _Started, copies: list[ShardState]) -> None:
    per_shard = Counter((c.index, c.shard) for c in copies if not c.primary)
    started.replicas = max(per_shard.values(), default=0)


def _judge(platform: Platform, started: _Started, copies: list[ShardState], now: float) -> str | None:
    """None while pending, "" when complete (primaries and replicas started), else why it failed."""
    summary = [(c.primary, c.state, c.unassigned_reason) for c in copies]
    _count_replicas(started, copies)
    if started.primaries_at is None and primaries_started(summary, started.primaries):
        _primaries_at(started, now)
    progress = restore_progress(summary, started.primaries)
    if progress == "complete":
        if started.primaries_at is not None:
            started.steps["replicas"] = now - started.primaries_at
        return ""
    stuck = [c for c in copies if c.primary and c.state == "UNASSIGNED"]
    for copy in stuck:
        started.unassigned_since.setdefault((copy.index, copy.shard), now)
    ask = [c for c in stuck if progress == "failed" or (
        now - started.unassigned_since[(c.index, c.shard)] > ASK_AFTER_S
        and now - started.asked_at.get((c.index, c.shard), 0.0) > ASK_AFTER_S)]
    for copy in ask[:1]:
        started.asked_at[(copy.index, copy.shard)] = now
        decision = platform.cluster.shard_allocation(copy.index, copy.shard)
        if restore_again(decision.can_allocate, copy.unassigned_reason,
                         restored_again=copy.index in started.restored_again):
            _restore_index_again(platform, started, copy.index, decision.why or decision.can_allocate)
            return None
        if primary_cannot_start(decision.can_allocate) or progress == "failed":
            return f"{copy.index}[{copy.shard}] cannot be restored: {decision.why or decision.can_allocate}"
    why = _unplaceable_replica(platform, started, copies, now) if not ask else None
    if why is not None:
        return why
    if now > started.deadline:
        states = ", ".join(f"{c.index}[{c.shard}]{'' if c.primary else ' replica'} {c.state}"
                           for c in copies if c.state != "STARTED")
        return f"not complete after {started.deadline - started.began:.0f}s ({states or 'no shard started yet'})"
    return None


def _restore_index_again(platform: Platform, started: _Started, index: str, why: str) -> None:
    """What Elasticsearch's explanation says to do for a primary lost with its node: the index
    (this restore's own) deleted and restored again from the same snapshot, within the same
    deadline; its mark, where the restore writes one, written again."""
    original = started.snapshot.indices[started.restored.index(index)]
    log.warning("restore of %s: every copy of %s was lost with a node (%s); restoring it again from %s",
                started.tenant, index, why, started.snapshot.name)
    started.restored_again[index] = why
    platform.cluster.delete_indices(index)
    platform.cluster.start_restore(started.repository, started.snapshot.name, [original],
                                   rename_prefix=started.rename_prefix, copy_replicas=started.copy_replicas)
    if started.mark is not None:
        platform.cluster.mark_indices([index], started.mark)
    for key in [k for k in started.unassigned_since if k[0] == index]:
        started.unassigned_since.pop(key, None)
        started.asked_at.pop(key, None)


def _unplaceable_replica(platform: Platform, started: _Started, copies: list[ShardState], now: float) -> str | None:
    """A replica Elasticsearch will never place (a cluster too small for its replicas stays
    yellow for ever): asked about as soon as its primary has started, and again every
    ASK_AFTER_S while it stays unassigned (one shard per look)."""
    active = {(c.index, c.shard) for c in copies if c.primary and c.state == "STARTED"}
    waiting = [c for c in copies if not c.primary and c.state == "UNASSIGNED" and (c.index, c.shard) in active
               and now - started.replica_asked_at.get((c.index, c.shard), now - 2 * ASK_AFTER_S) > ASK_AFTER_S]
    for copy in waiting[:1]:
        started.replica_asked_at[(copy.index, copy.shard)] = now
        decision = platform.cluster.shard_allocation(copy.index, copy.shard, primary=False)
        if never_allocatable(decision.can_allocate, decision.refusals):
            deciders = sorted({d for node in decision.refusals for d in node})
            return (f"{copy.index}[{copy.shard}] replica cannot be allocated on any of the cluster's "
                    f"{len(decision.refusals)} node(s) ({', '.join(deciders)}): {decision.why}")
    return None


def _await(platform: Platform, started: _Started, on_primaries: Callable[[], None]) -> SnapshotRestore:
    """Wait until the tenant's primaries have started, then every replica (green), inside
    Elasticsearch: it answers the moment the cluster state says so, so the next tenant starts at
    once and no poll loads the master meanwhile. The primaries are waited for one started shard
    at a time (``wait_for_active_shards``), each answer checked against the tenant's shards;
    every wait lasts at most WAIT_SLICE_S, and between two the tenant is judged, so a failure is
    named as soon as it shows."""
    cluster = platform.cluster
    active = started.primaries
    green = False
    what = f"restore of {started.tenant} from {started.snapshot.name}"
    try:
        while not green and started.primaries_at is None:
            health = through_elections(started.deadline, what, functools.partial(
                cluster.await_health, started.restored, WAIT_SLICE_S, active_shards=active))
            green = bool(through_elections(started.deadline, what, functools.partial(_judged, platform, started)))
            if health is not None:  # not the primaries yet (a replica started first): the next shard
                active = max(active, int(health.get("active_shards", 0)) + 1)
    finally:  # the primaries started even when the look that saw it found a replica that never will
        if started.primaries_at is not None:
            on_primaries()
    while not green:
        green = through_elections(started.deadline, what, functools.partial(
            cluster.await_health, started.restored, WAIT_SLICE_S, status="green")) is not None \
            or bool(through_elections(started.deadline, what, functools.partial(_judged, platform, started)))
    done_at = time.monotonic()
    started.steps["replicas"] = done_at - (started.primaries_at or done_at)
    return _finish(platform, started, done_at)


def _judged(platform: Platform, started: _Started) -> bool:
    """Whether the tenant's restore is complete by its shards now; raises its failure."""
    verdict = _judge(platform, started, platform.cluster.shard_states(started.restored), time.monotonic())
    if verdict:
        raise RestoreFailed(f"restore of {started.tenant} from {started.snapshot.name} failed: {verdict}",
                            hint="see Elasticsearch's log and _cluster/allocation/explain")
    return verdict == ""


def _restore(platform: Platform, job: TenantRestoreJob, drill_id: str, owners: TenantIndices, timeout_s: float,
             rename_prefix: str | None, on_primaries: Callable[[], None]) -> SnapshotRestore:
    """One tenant, in a worker of its own: prepared, started, waited for, recorded."""
    return _await(platform, _start(platform, job, drill_id, owners, timeout_s, rename_prefix), on_primaries)


def restore_tenants(platform: Platform, jobs: Sequence[TenantRestoreJob], drill_id: str, owners: TenantIndices, *,
                    timeout_s: float, concurrency: int, rename_prefix: str | None = None,
                    progress: Callable[[str], None] | None = None,
                    on_primaries: Callable[[int], None] | None = None) -> TenantRestores:
    """Restore tenants with at most ``concurrency`` between being prepared and being complete.

    Every tenant is judged as strictly as alone; one failing does not stop the others, and each
    failure keeps its own message. A failure that is not the platform's (a bug) is re-raised
    once the tenants in flight are settled. ``on_primaries`` is called once, when every tenant's
    primaries have started (or the tenant failed), with the number failed so far: from then on
    only replicas are recovering."""
    began = time.monotonic()
    workers = max(1, min(concurrency, len(jobs)))
    outcome: dict[int, SnapshotRestore | RecoveryFailure] = {}
    running: dict[Future[SnapshotRestore], int] = {}
    bug: BaseException | None = None
    next_job = 0
    last_said = last_count_said = began
    lock = threading.Lock()
    # Tenants whose primaries may still be recovering; when none is left, only replicas are.
    primaries_pending = set(range(len(jobs)))
    primaries_done: list[float] = []

    def primaries_over(number: int) -> None:
        with lock:
            primaries_pending.discard(number)
            if primaries_pending or primaries_done:
                return
            primaries_done.append(time.monotonic())
        if on_primaries is not None:
            on_primaries(sum(1 for r in list(outcome.values()) if isinstance(r, RecoveryFailure)))

    def settle(number: int, result: SnapshotRestore | RecoveryFailure) -> None:
        nonlocal last_count_said
        outcome[number] = result
        primaries_over(number)
        now = time.monotonic()
        # A line per tenant while they are few, then about one a second (1,000 tenants).
        if progress is not None and len(jobs) > 1 and (len(jobs) <= 20 or now - last_count_said >= 1.0
                                                       or len(outcome) == len(jobs)):
            last_count_said = now
            progress(f"restored {len(outcome)}/{len(jobs)} tenants ({now - began:.0f}s)")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as pool:
        while len(outcome) < len(jobs):
            while bug is None and next_job < len(jobs) and len(running) < workers:
                number = next_job
                running[pool.submit(_restore, platform, jobs[number], drill_id, owners, timeout_s, rename_prefix,
                                    functools.partial(primaries_over, number))] = number
                next_job += 1
            if bug is not None and not running:
                for number in range(next_job, len(jobs)):
                    settle(number, RestoreFailed(f"tenant {jobs[number].tenant}: not restored after an internal error"))
                break
            finished, _ = wait(running, timeout=PROGRESS_EVERY_S, return_when=FIRST_COMPLETED)
            for future in finished:
                number = running.pop(future)
                try:
                    settle(number, future.result())
                except BaseException as exc:
                    failure = _as_failure(jobs[number].tenant, exc)
                    if failure is None:
                        bug, failure = bug or exc, RestoreFailed(f"internal error: {type(exc).__name__}")
                    settle(number, failure)
            now = time.monotonic()
            if progress is not None and now - last_said >= PROGRESS_EVERY_S and running:
                last_said = now
                progress(f"restoring {', '.join(str(jobs[n].tenant) for n in running.values())[:200]} "
                         f"({len(outcome)}/{len(jobs)} done, {now - began:.0f}s)")
    if bug is not None:
        raise bug
    restored = [r for _, r in sorted(outcome.items()) if isinstance(r, SnapshotRestore)]
    failed = [(jobs[n].tenant, r) for n, r in sorted(outcome.items()) if isinstance(r, RecoveryFailure)]
    ended = time.monotonic()
    return TenantRestores(restored, failed, workers, ended - began,
                          (primaries_done[0] if primaries_done else ended) - began)


def _as_failure(tenant: Tenant, exc: BaseException) -> RecoveryFailure | None:
    """The platform failing to restore this tenant, or None for a bug in drdrill."""
    if isinstance(exc, RecoveryFailure):
        return _naming(tenant, exc)
    if isinstance(exc, ServiceError):  # a service failing during recovery is the platform failing
        return _naming(tenant, RestoreFailed(exc.message, hint=exc.hint))
    if isinstance(exc, OSError):  # this tenant's copy could not be written (a full or read-only disk)
        return _naming(tenant, RestoreFailed(f"its repository copy could not be written: {exc}",
                                             hint="check the space and permissions of fs_repository_dir"))
    return None


def _naming(tenant: Tenant, failure: RecoveryFailure) -> RecoveryFailure:
    """The failure, saying which tenant it is about (once)."""
    if f"tenant {tenant}" not in failure.message and f"restore of {tenant}" not in failure.message:
        failure.message = f"tenant {tenant}: {failure.message}"
        failure.args = (failure.message,)
    return failure


def restore_tenant(platform: Platform, tenant: Tenant, drill_id: str, owners: TenantIndices, *, timeout_s: float,
                   snapshot: str | None = None, repository: str | None = None, rename_prefix: str | None = None,
                   progress: Callable[[str], None] | None = None) -> SnapshotRestore:
    """One tenant's restore; raises its failure."""
    done = restore_tenants(platform, [TenantRestoreJob(tenant, snapshot, repository)], drill_id, owners,
                           timeout_s=timeout_s, concurrency=1, rename_prefix=rename_prefix, progress=progress)
    if done.failed:
        raise done.failed[0][1]
    return done.restored[0]
