"""What a snapshot restore meets when the cluster loses a node under it (issue 24): a master
lost mid-request, and the election after it. The restore's state lives in the cluster state,
so both are waited through, within the restore's own deadline, never mistaken for its end."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from drdrill.errors import NoElectedMaster, RestoreFailed, ServiceError

if TYPE_CHECKING:
    from drdrill.adapters.platform import Platform

log = logging.getLogger(__name__)
T = TypeVar("T")

# How far Elasticsearch's clock may be behind drdrill's when a restore's recoveries are dated.
CLOCK_SKEW_MS = 2000
# How long the recoveries of a restore that may have been applied are looked for.
ACCEPTED_WITHIN_S = 10.0
POLL_S = 0.25


def accepted_all_the_same(platform: Platform, repository: str, snapshot: str, restored: list[str],
                           asked_at_ms: int) -> bool:
    """A restore request is sent again when a node is lost mid-request (the client fails over
    to another node; Elasticsearch sends a master action again to a newly elected master), and
    one already applied is then refused ("an open index with same name already exists"). The
    restore went through when every index has a
    recovery from this very snapshot that began after the restore was asked for (an index
    restored from it earlier is refused as it should be; a clock skew beyond CLOCK_SKEW_MS fails
    the restore, the safe side); asked for a few seconds, as shards are assigned one by one."""
    deadline = time.monotonic() + ACCEPTED_WITHIN_S
    while True:
        try:
            sources = {r.index for r in platform.cluster.recoveries(restored)
                       if r.source == f"{repository}/{snapshot}" and r.start_time_ms >= asked_at_ms - CLOCK_SKEW_MS}
        except ServiceError:
            sources = set()
        if set(restored) <= sources:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)


def through_elections(deadline: float, what: str, call: Callable[[], T]) -> T | None:
    """``call``, or None while the cluster has no elected master (its master was lost and it is
    electing another): the restore's state lives in the cluster state, and the new master
    carries it on, so the wait goes on, within the restore's deadline, not ended by a 503."""
    try:
        return call()
    except NoElectedMaster as exc:
        if time.monotonic() > deadline:
            raise RestoreFailed(f"{what}: {exc.message}", hint=exc.hint) from exc
        log.info("%s: %s; waiting for a master to be elected", what, exc.message)
        time.sleep(POLL_S)
        return None
