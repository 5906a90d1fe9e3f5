"""The floor under a restore of many small tenants: the time Elasticsearch itself spends on
cluster states (pure).

Every restore, every shard that starts, every repository registered is a new cluster state,
computed by the elected master, published to every node (and written to disk) and applied.
Elasticsearch does these one at a time, so with many small tenants their sum bounds the restore
however fast the data moves. ``GET _nodes/stats/discovery`` counts them per node under
``discovery.cluster_state_update``, as ES 9 (and 8) report them:

* ``unchanged`` — tasks that produced no new state: ``count``, ``computation_time_millis``,
  ``notification_time_millis``;
* ``success`` and ``failure`` — states published (or whose publication failed): ``count``,
  ``computation_time_millis``, ``publication_time_millis``, ``context_construction_time_millis``,
  ``commit_time_millis``, ``completion_time_millis``, ``master_apply_time_millis``,
  ``notification_time_millis``.

``publication_time_millis`` runs from the start of the publication to its end, so context
construction, commit, completion and the master's own apply are parts of it (ES's
``MasterService`` adds each of them from the same publication event): the time a state cost
the master is computation + publication + notification, and adding the parts again would count
them twice. Only the elected master counts; summing over every node keeps the figure right when
the master changes between the two readings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OUTCOMES = ("unchanged", "success", "failure")
# The non-overlapping parts of one cluster-state update (see the module's docstring).
SPENT = ("computation_time_millis", "publication_time_millis", "notification_time_millis")
# When the master's cluster-state work is more than this share of a restore phase, it is the
# restore's bottleneck: more tenants side by side cannot make it faster.
DOMINANT_SHARE = 0.5


@dataclass(frozen=True)
class ClusterStateWork:
    """Cluster-state updates counted by Elasticsearch (cumulative since the nodes started, or a
    difference of two readings)."""

    published: int = 0  # new states, published successfully
    failed: int = 0  # new states whose publication failed
    unchanged: int = 0  # tasks that changed nothing
    millis: float = 0.0  # computation + publication + notification, every outcome

    @property
    def states(self) -> int:
        return self.published + self.failed

    @property
    def seconds(self) -> float:
        return self.millis / 1000

    def __sub__(self, earlier: ClusterStateWork) -> ClusterStateWork:
        return ClusterStateWork(self.published - earlier.published, self.failed - earlier.failed,
                                self.unchanged - earlier.unchanged, self.millis - earlier.millis)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def cluster_state_work(nodes_stats: Mapping[str, Any]) -> ClusterStateWork:
    """From the answer of ``GET _nodes/stats/discovery``: summed over every node."""
    published = failed = unchanged = 0
    millis = 0.0
    nodes = nodes_stats.get("nodes")
    for node in (nodes.values() if isinstance(nodes, Mapping) else ()):
        update = ((node or {}).get("discovery") or {}).get("cluster_state_update") or {}
        for outcome in OUTCOMES:
            part = update.get(outcome) or {}
            count = int(_number(part.get("count")))
            if outcome == "success":
                published += count
            elif outcome == "failure":
                failed += count
            else:
                unchanged += count
            millis += sum(_number(part.get(key)) for key in SPENT)
    return ClusterStateWork(published, failed, unchanged, millis)


def cluster_state_bound(restore_seconds: float | None, cluster_state_seconds: float | None) -> bool:
    """Whether the master's cluster-state work dominated a restore phase of that wall time:
    then the restore is bounded by Elasticsearch publishing states one after another, not by
    moving data, and more tenants side by side cannot make it faster."""
    if restore_seconds is None or cluster_state_seconds is None or restore_seconds <= 0:
        return False
    return cluster_state_seconds > DOMINANT_SHARE * restore_seconds


# The platform's own indices keep one replica (issue 24): what a drill seeds where it can.
PLATFORM_REPLICAS = 1


def default_replicas(data_nodes: int) -> int:
    """The replicas a drill gives its indices when none are configured: the platform's one, as
    long as the cluster has a node for it beside the primary's (a replica never shares its
    primary's node, so on one node it would leave the cluster yellow for ever)."""
    return max(0, min(PLATFORM_REPLICAS, data_nodes - 1))
