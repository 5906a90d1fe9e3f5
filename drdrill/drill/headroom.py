"""Room for a restore beside the live indices, asked before anything is restored: the size of
what will be restored (from the store's listing) against each data node's disk and the
watermarks in force (from Elasticsearch), judged by :mod:`drdrill.core.headroom`."""

from __future__ import annotations

from typing import Any

from drdrill.adapters.platform import Platform
from drdrill.backups import catalog
from drdrill.core.headroom import DEFAULT_HIGH, NodeRoom, headroom_problem, reserved_bytes
from drdrill.core.layout import Tenant
from drdrill.errors import UsageError


def check_headroom(platform: Platform, chosen: list[tuple[Tenant, catalog.SnapshotEntry]]) -> dict[str, Any]:
    """The figures (for the report); refuses (exit 2) a restore that would cross a data node's
    high disk watermark."""
    sizes: dict[str, int] = {}
    for tenant, entry in chosen:
        sizes.update({f"{tenant}/{index}": size
                      for index, size in catalog.index_blob_bytes(platform.store, tenant, entry).items()})
    total, largest = sum(sizes.values()), max(sizes.values(), default=0)
    marks = platform.cluster.disk_watermarks()
    enabled = marks.get("threshold_enabled", "true") != "false"
    high = marks.get("high", DEFAULT_HIGH)
    nodes = [NodeRoom(d.node, d.total_bytes, d.available_bytes, reserved_bytes(high, d.total_bytes) if enabled else 0)
             for d in platform.cluster.data_node_disks()]
    figures = {"restore_bytes_upper_bound": total, "largest_index_bytes": largest,
               "high_watermark": high if enabled else "disabled", "nodes": [vars(n) for n in nodes]}
    problem = headroom_problem(total, largest, nodes)
    if problem is not None:
        raise UsageError(f"refusing to restore beside the live indices: {problem}",
                         hint="free space on the data nodes, or run the restore test where there is room")
    return figures
