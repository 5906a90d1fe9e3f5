"""What an Elasticsearch cluster holds, as a restore test on someone else's cluster must know it:
every index's identity (UUID, settings, mappings), the cluster's own settings, drdrill's
ownership marks on the indices it created, and each data node's disk against the watermarks.
The part of :class:`~drdrill.adapters.elasticsearch.SearchCluster` that reads for
``drdrill.targets.live.target``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from elasticsearch import NotFoundError

from drdrill.adapters.es_names import batches

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

# Where drdrill's mark sits in an index's mapping: ``_meta.drdrill``.
MARK_KEY = "drdrill"
# Index settings that say when or how an index was made, not what it is: never "changed".
_VOLATILE_SETTINGS = ("index.creation_date", "index.provided_name", "index.version", "index.history.uuid")


@dataclass(frozen=True)
class NodeDisk:
    """One data node's disk as Elasticsearch sees it (``_nodes/stats/fs``)."""

    node: str
    total_bytes: int
    available_bytes: int


class InventoryOps:
    """Reads by name, batched under Elasticsearch's request-line limit."""

    if TYPE_CHECKING:
        @property
        def client(self) -> Elasticsearch: ...

        def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    def index_identities(self, names: list[str]) -> dict[str, str]:
        """Per index: its UUID, settings (less the volatile ones) and mappings, as one JSON text
        that changes only when the index itself was replaced or redefined."""
        out: dict[str, str] = {}
        for batch in batches(sorted(names)):
            joined = ",".join(batch)
            settings = self._call("read index settings", self.client.indices.get_settings, index=joined,
                                  flat_settings=True, expand_wildcards="open,closed", ignore_unavailable=True)
            mappings = self._call("read mappings", self.client.indices.get_mapping, index=joined,
                                  expand_wildcards="open,closed", ignore_unavailable=True)
            for index, body in dict(settings).items():
                flat = {k: v for k, v in (body.get("settings") or {}).items() if not k.startswith(_VOLATILE_SETTINGS)}
                identity = {"settings": flat, "mappings": (dict(mappings).get(index) or {}).get("mappings")}
                out[index] = json.dumps(identity, sort_keys=True)
        return out

    def cluster_settings(self) -> dict[str, Any]:
        """Persistent and transient cluster settings (flat)."""
        data = self._call("read cluster settings", self.client.cluster.get_settings, flat_settings=True)
        return {"persistent": dict(data.get("persistent") or {}), "transient": dict(data.get("transient") or {})}

    def mark_indices(self, names: list[str], mark: dict[str, Any]) -> None:
        """Write drdrill's mark into each index's mapping ``_meta`` (indices drdrill created)."""
        for batch in batches(sorted(names)):
            self._call("mark indices", self.client.indices.put_mapping, index=",".join(batch),
                       meta={MARK_KEY: mark})

    def index_marks(self, pattern: str) -> dict[str, dict[str, Any] | None]:
        """Indices matching ``pattern`` and the drdrill mark each carries (None: unmarked)."""
        def read() -> dict[str, Any]:
            # No index matching is an answer (nothing marked), not a failure.
            try:
                return dict(self.client.indices.get_mapping(index=pattern, expand_wildcards="open,closed"))
            except NotFoundError:
                return {}

        found = self._call("read marks", read)
        out: dict[str, dict[str, Any] | None] = {}
        for index, body in found.items():
            meta = ((body or {}).get("mappings") or {}).get("_meta") or {}
            mark = meta.get(MARK_KEY)
            out[index] = mark if isinstance(mark, dict) else None
        return out

    def data_node_disks(self) -> list[NodeDisk]:
        data = self._call("read node disk stats", self.client.nodes.stats, metric="fs")
        out = []
        for node in (data.get("nodes") or {}).values():
            roles = node.get("roles") or ["data"]
            if not any(r == "data" or r.startswith("data_") for r in roles):
                continue
            total = (node.get("fs") or {}).get("total") or {}
            out.append(NodeDisk(str(node.get("name")), int(total.get("total_in_bytes", 0)),
                                int(total.get("available_in_bytes", 0))))
        return out

    def disk_watermarks(self) -> dict[str, str]:
        """The disk allocation settings in force (set or default), as Elasticsearch spells them."""
        keys = ("cluster.routing.allocation.disk.threshold_enabled", "cluster.routing.allocation.disk.watermark.low",
                "cluster.routing.allocation.disk.watermark.high",
                "cluster.routing.allocation.disk.watermark.flood_stage")
        data = self._call("read disk watermarks", self.client.cluster.get_settings, include_defaults=True,
                          flat_settings=True)
        out: dict[str, str] = {}
        for scope in ("defaults", "persistent", "transient"):  # later scopes win, as in Elasticsearch
            for key in keys:
                if key in (data.get(scope) or {}):
                    out[key.rsplit(".", 1)[-1]] = str(data[scope][key])
        return out
