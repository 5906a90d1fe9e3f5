"""Runbook step 4 made strict and fast: every tenant's snapshot restored from the object store.

Per tenant: its newest complete snapshot (from the store's own catalogue), refused if it holds
another tenant's index; a fresh copy of its repository where the target mirrors repositories;
the repository registered read-only; the restore started. Elasticsearch recovers the shards in
the background while the next tenants are prepared and started, up to ``concurrency`` tenants
in flight; one watcher follows all of them through ``_cat/shards`` and judges each by the one
rule for a complete restore (drdrill.core.completeness). A tenant whose shard cannot be
allocated fails at once, with Elasticsearch's reason, rather than at the end of the wait."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from drdrill.adapters.elasticsearch import ShardRecovery, ShardState
from drdrill.adapters.platform import Platform
from drdrill.backups import catalog, repo_sync
from drdrill.core.completeness import restore_progress
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.drill.restore import restore_copies
from drdrill.errors import RecoveryFailure, RestoreFailed, ServiceError

log = logging.getLogger(__name__)

POLL_S = 0.05
# An unassigned primary is asked about after this long: Elasticsearch may only be queueing it
# (node_initial_primaries_recoveries), or it may never place it (a full disk).
ASK_AFTER_S = 3.0
PROGRESS_EVERY_S = 5.0


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


@dataclass(frozen=True)
class TenantRestoreJob:
    """One tenant's restore: by default its newest complete snapshot, into a repository of its own."""

    tenant: Tenant
    snapshot: str | None = None
    repository: str | None = None
    # Written into each restored index's mapping _meta as soon as Elasticsearch accepted the
    # restore (drdrill's ownership mark on an environment it does not own).
    mark: dict[str, str] | None = None


@dataclass
class TenantRestores:
    """What a restore of several tenants established: each tenant's result or its failure, in
    the order the tenants were given (whatever order they finished in)."""

    restored: list[SnapshotRestore]
    failed: list[tuple[Tenant, RecoveryFailure]]
    concurrency: int
    seconds: float


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


def _start(platform: Platform, job: TenantRestoreJob, drill_id: str, owners: TenantIndices, timeout_s: float,
           rename_prefix: str | None) -> _Started:
    """Everything before Elasticsearch recovers the shards: choose, check, fetch, register, start."""
    tenant = job.tenant
    chosen = choose_snapshot(catalog.tenant_snapshots(platform.store, tenant), tenant, job.snapshot)
    foreign = owners.foreign(tenant, chosen.indices)
    if foreign:
        raise RestoreFailed(f"snapshot {chosen.name} in {tenant}'s repository holds indices of another tenant: "
                            f"{', '.join(foreign[:3])}", hint=f"the repository at {tenant.repo_prefix} is not this "
                            "tenant's; check the backup job's path for each tenant")
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
        platform.cluster.register_fs_repository(repository, str(location), readonly=True)
    else:
        platform.cluster.register_s3_repository(repository, platform.store.bucket, tenant.repo_prefix, readonly=True)
    # What Elasticsearch itself says of the snapshot (the root blob has no shard counts).
    info = platform.cluster.snapshot(repository, chosen.name)
    if not info.complete:
        raise RestoreFailed(f"snapshot {chosen.name} of {tenant} is {info.state} with {info.shards_failed} failed "
                            f"shard(s) of {info.shards_total}", hint="not a usable recovery point")
    began = time.monotonic()
    platform.cluster.start_restore(repository, chosen.name, list(chosen.indices), rename_prefix=rename_prefix)
    restored = [f"{rename_prefix or ''}{index}" for index in chosen.indices]
    if job.mark is not None:
        platform.cluster.mark_indices(restored, job.mark)
    return _Started(tenant, repository, chosen, restored, info.shards_total, fetch, began, began + timeout_s)


def _finish(platform: Platform, started: _Started) -> SnapshotRestore:
    """The restore is complete by its shards' states: record what Elasticsearch says of them."""
    seconds = time.monotonic() - started.began
    recoveries = platform.cluster.recoveries(started.restored)
    not_done = [f"{r.index}[{r.shard}] {r.stage}" for r in recoveries if r.stage.upper() != "DONE"]
    if not_done:
        raise RestoreFailed(f"restore of {started.tenant} from {started.snapshot.name} incomplete: not done: "
                            f"{', '.join(not_done[:3])}", hint="see Elasticsearch's log and _cat/recovery")
    log.info("restored %s from %s: %d indices in %.1fs (+%.1fs fetch)", started.tenant, started.snapshot.name,
             len(started.restored), seconds, started.fetch.seconds)
    return SnapshotRestore(
        tenant=started.tenant.key, repository=started.repository, snapshot=started.snapshot.name,
        uuid=started.snapshot.uuid, indices=started.snapshot.indices, fetched_bytes=started.fetch.bytes,
        fetch_seconds=started.fetch.seconds, restore_seconds=seconds, shards_total=started.primaries,
        shards_failed=0, shards=recoveries, health="green", restored_as=tuple(started.restored))


def _judge(platform: Platform, started: _Started, copies: list[ShardState], now: float) -> str | None:
    """None while pending, "" when complete, else why it failed."""
    progress = restore_progress(((c.primary, c.state, c.unassigned_reason) for c in copies), started.primaries)
    if progress == "complete":
        return ""
    stuck = [c for c in copies if c.primary and c.state == "UNASSIGNED"]
    for copy in stuck:
        started.unassigned_since.setdefault((copy.index, copy.shard), now)
    ask = [c for c in stuck if progress == "failed" or (
        now - started.unassigned_since[(c.index, c.shard)] > ASK_AFTER_S
        and now - started.asked_at.get((c.index, c.shard), 0.0) > ASK_AFTER_S)]
    for copy in ask[:1]:
        started.asked_at[(copy.index, copy.shard)] = now
        decision, why = platform.cluster.shard_allocation(copy.index, copy.shard)
        if decision == "no" or progress == "failed":
            return f"{copy.index}[{copy.shard}] cannot be restored: {why or decision}"
    if now > started.deadline:
        states = ", ".join(f"{c.index}[{c.shard}] {c.state}" for c in copies if c.state != "STARTED")
        return f"not complete after {started.deadline - started.began:.0f}s ({states or 'no shard started yet'})"
    return None


def restore_tenants(platform: Platform, jobs: Sequence[TenantRestoreJob], drill_id: str, owners: TenantIndices, *,
                    timeout_s: float, concurrency: int, rename_prefix: str | None = None,
                    progress: Callable[[str], None] | None = None) -> TenantRestores:
    """Restore tenants with at most ``concurrency`` between being prepared and being complete.

    Every tenant is judged as strictly as alone; one failing does not stop the others, and each
    failure keeps its own message. A failure that is not the platform's (a bug) is re-raised
    once the tenants in flight are settled."""
    began = time.monotonic()
    workers = max(1, min(concurrency, len(jobs)))
    outcome: dict[int, SnapshotRestore | RecoveryFailure] = {}
    starting: dict[Future[_Started], int] = {}
    in_flight: dict[int, _Started] = {}
    bug: BaseException | None = None
    next_job = 0
    last_said = began

    last_count_said = 0.0

    def settle(number: int, result: SnapshotRestore | RecoveryFailure) -> None:
        nonlocal last_count_said
        outcome[number] = result
        now = time.monotonic()
        # A line per tenant while they are few, then about one a second (1,000 tenants).
        if progress is not None and len(jobs) > 1 and (len(jobs) <= 20 or now - last_count_said >= 1.0
                                                       or len(outcome) == len(jobs)):
            last_count_said = now
            progress(f"restored {len(outcome)}/{len(jobs)} tenants ({now - began:.0f}s)")

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as pool:
        while len(outcome) < len(jobs):
            while bug is None and next_job < len(jobs) and len(starting) + len(in_flight) < workers:
                starting[pool.submit(_start, platform, jobs[next_job], drill_id, owners, timeout_s,
                                     rename_prefix)] = next_job
                next_job += 1
            for future in [f for f in starting if f.done()]:
                number = starting.pop(future)
                try:
                    in_flight[number] = future.result()
                except BaseException as exc:
                    failure = _as_failure(jobs[number].tenant, exc)
                    if failure is None:
                        bug, failure = bug or exc, RestoreFailed(f"internal error: {type(exc).__name__}")
                    settle(number, failure)
            if in_flight:
                _watch(platform, in_flight, settle)
            if bug is not None and not starting and not in_flight:
                for number in range(next_job, len(jobs)):
                    settle(number, RestoreFailed(f"tenant {jobs[number].tenant}: not restored after an internal error"))
                break
            now = time.monotonic()
            if progress is not None and now - last_said >= PROGRESS_EVERY_S and in_flight:
                last_said = now
                progress(f"restoring {', '.join(str(s.tenant) for s in in_flight.values())[:200]} "
                         f"({len(outcome)}/{len(jobs)} done, {now - began:.0f}s)")
            if len(outcome) < len(jobs):
                # Back at once when a tenant's start is done; else look at Elasticsearch again soon.
                wait(starting, timeout=POLL_S, return_when=FIRST_COMPLETED) if starting else time.sleep(POLL_S)
    if bug is not None:
        raise bug
    restored = [r for _, r in sorted(outcome.items()) if isinstance(r, SnapshotRestore)]
    failed = [(jobs[n].tenant, r) for n, r in sorted(outcome.items()) if isinstance(r, RecoveryFailure)]
    return TenantRestores(restored, failed, workers, time.monotonic() - began)


def _watch(platform: Platform, in_flight: dict[int, _Started],
           settle: Callable[[int, SnapshotRestore | RecoveryFailure], None]) -> None:
    """One look at every tenant in flight; the complete and the failed leave it."""
    names = [index for started in in_flight.values() for index in started.restored]
    try:
        copies = platform.cluster.shard_states(names)
    except ServiceError as exc:  # Elasticsearch went away mid-restore: every tenant in flight failed
        for number in list(in_flight):
            settle(number, _naming(in_flight.pop(number).tenant, RestoreFailed(exc.message, hint=exc.hint)))
        return
    now = time.monotonic()
    for number, started in list(in_flight.items()):
        own = [c for c in copies if c.index in started.restored]
        try:
            verdict = _judge(platform, started, own, now)
            if verdict is None:
                continue
            result: SnapshotRestore | RecoveryFailure = (
                _finish(platform, started) if verdict == "" else
                RestoreFailed(f"restore of {started.tenant} from {started.snapshot.name} failed: {verdict}",
                              hint="see Elasticsearch's log and _cluster/allocation/explain"))
        except (RecoveryFailure, ServiceError) as exc:
            result = _as_failure(started.tenant, exc) or RestoreFailed(str(exc))
        del in_flight[number]
        settle(number, _naming(started.tenant, result) if isinstance(result, RecoveryFailure) else result)


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
