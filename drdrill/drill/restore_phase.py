"""What a drill records around its snapshot restore besides the tenants' own results: the
restore phase split into the part that recovered primaries and the part that rebuilt replicas
(timeline phases), and the floor under it, the cluster-state work Elasticsearch did meanwhile
(drdrill.core.cluster_state)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from drdrill.core.cluster_state import ClusterStateWork
from drdrill.core.timeline import Timeline
from drdrill.errors import ServiceError

if TYPE_CHECKING:
    from drdrill.adapters.elasticsearch import SearchCluster
    from drdrill.drill.snapshot_restore import TenantRestores

log = logging.getLogger(__name__)

PRIMARIES_PHASE = "restore-primaries"
REPLICAS_PHASE = "restore-replicas"


def cluster_state_reading(cluster: SearchCluster) -> ClusterStateWork | None:
    """The cluster-state counters now, or None when Elasticsearch does not answer (the restore
    itself then fails and says so; a missing floor is not a second failure)."""
    try:
        return cluster.cluster_state_work()
    except ServiceError as exc:
        log.info("cluster-state counters not read: %s", exc.message)
        return None


class RestoreParts:
    """Created as the restore phase begins; :meth:`primaries_started` is the restore's
    ``on_primaries``; :meth:`finish` records the parts once the restore has returned."""

    def __init__(self, timeline: Timeline, cluster: SearchCluster, scenario: str) -> None:
        self.timeline, self.cluster, self.scenario = timeline, cluster, scenario
        self.before = cluster_state_reading(cluster)
        self.began = timeline.instant()
        self.primaries: tuple[datetime, float] | None = None
        self.failed_before_replicas = 0

    def primaries_started(self, failed_so_far: int) -> None:
        if self.primaries is None:
            self.primaries = self.timeline.instant()
            self.failed_before_replicas = failed_so_far

    def finish(self, outcome: TenantRestores) -> None:
        ended = self.timeline.instant()
        after = cluster_state_reading(self.cluster)
        if self.before is not None and after is not None:
            outcome.cluster_states = after - self.before
        split = self.primaries or ended
        failed_early = self.failed_before_replicas if self.primaries is not None else len(outcome.failed)
        self.timeline.add_phase(PRIMARIES_PHASE, self.began, split, detail=self.scenario,
                                status="failed" if failed_early else "passed")
        failed_late = len(outcome.failed) - failed_early
        if any(r.replicas for r in outcome.restored) or failed_late:
            self.timeline.add_phase(REPLICAS_PHASE, split, ended, detail=self.scenario,
                                    status="failed" if failed_late else "passed")


def restore_test_notes(outcome: TenantRestores, replicas: int) -> dict[str, object]:
    """What the restore test records of its restore, with what makes it less faithful than a
    production recovery (the report lists each as a weakness of fidelity)."""
    notes: dict[str, object] = {
        "concurrency": outcome.concurrency, "seconds": round(outcome.seconds, 3),
        "primaries_seconds": round(outcome.primaries_seconds if outcome.primaries_seconds is not None
                                   else outcome.seconds, 3),
        "replicas": replicas, "lifecycle_policy": "removed from the copies", "aliases": "not restored"}
    if outcome.cluster_states is not None:
        notes.update(cluster_state_seconds=round(outcome.cluster_states.seconds, 3),
                     cluster_states=outcome.cluster_states.states)
    if replicas == 0:
        notes["fidelity"] = ["the restore test's copies have no replica ([restore_test] replicas = 0): the replica "
                             "rebuild a production recovery waits for before the platform is green is not in its RTO"]
    return notes
