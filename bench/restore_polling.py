"""drdrill's snapshot restore as it was before issue 24 (git 122ddd2), kept for benchmark 7 to
measure side by side with today's: the tenants' starts in a thread pool and ONE watcher in the
main thread that polls ``_cat/shards`` every 50 ms for every tenant in flight, settling a
tenant when it sees its copies started and starting the next one after the next sleep. Its
parts (start, judge, finish) are today's, so the difference measured is the waiting alone."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from drdrill.adapters.platform import Platform
from drdrill.core.layout import TenantIndices
from drdrill.drill.snapshot_restore import (
    SnapshotRestore,
    TenantRestoreJob,
    TenantRestores,
    _as_failure,
    _finish,
    _judge,
    _naming,
    _start,
    _Started,
)
from drdrill.errors import RecoveryFailure, RestoreFailed, ServiceError

POLL_S = 0.05


def restore_tenants_polling(platform: Platform, jobs: Sequence[TenantRestoreJob], drill_id: str,
                            owners: TenantIndices, *, timeout_s: float, concurrency: int) -> TenantRestores:
    """restore_tenants as of 122ddd2 (without its progress lines)."""
    began = time.monotonic()
    workers = max(1, min(concurrency, len(jobs)))
    outcome: dict[int, SnapshotRestore | RecoveryFailure] = {}
    starting: dict[Future[_Started], int] = {}
    in_flight: dict[int, _Started] = {}
    next_job = 0

    def settle(number: int, result: SnapshotRestore | RecoveryFailure) -> None:
        outcome[number] = result

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as pool:
        while len(outcome) < len(jobs):
            while next_job < len(jobs) and len(starting) + len(in_flight) < workers:
                starting[pool.submit(_start, platform, jobs[next_job], drill_id, owners, timeout_s, None)] = next_job
                next_job += 1
            for future in [f for f in starting if f.done()]:
                number = starting.pop(future)
                try:
                    in_flight[number] = future.result()
                except BaseException as exc:
                    settle(number, _as_failure(jobs[number].tenant, exc) or RestoreFailed(repr(exc)))
            if in_flight:
                _watch(platform, in_flight, settle)
            if len(outcome) < len(jobs):
                # Back at once when a tenant's start is done; else look at Elasticsearch again soon.
                wait(starting, timeout=POLL_S, return_when=FIRST_COMPLETED) if starting else time.sleep(POLL_S)
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
                _finish(platform, started, now) if verdict == "" else
                RestoreFailed(f"restore of {started.tenant} from {started.snapshot.name} failed: {verdict}",
                              hint="see Elasticsearch's log and _cluster/allocation/explain"))
        except (RecoveryFailure, ServiceError) as exc:
            result = _as_failure(started.tenant, exc) or RestoreFailed(str(exc))
        del in_flight[number]
        settle(number, _naming(started.tenant, result) if isinstance(result, RecoveryFailure) else result)
