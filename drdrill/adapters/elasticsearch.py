"""Elasticsearch: health, settings, indices and documents; the snapshot side (repositories,
snapshots, restores) is :mod:`drdrill.adapters.es_snapshots`, which :class:`SearchCluster` inherits."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, NotFoundError
from elasticsearch import __versionstr__ as elasticsearch_version

from drdrill.adapters.es_guard import guarded_client
from drdrill.adapters.es_inventory import InventoryOps
from drdrill.adapters.es_names import LIST_ALL_ABOVE, batches
from drdrill.adapters.es_snapshots import NO_MASTER_HINT, ShardRecovery, ShardState, SnapshotOps, no_master
from drdrill.core.cluster_state import ClusterStateWork, cluster_state_work
from drdrill.core.ownership import UNRESTRICTED, WritePolicy
from drdrill.errors import NoElectedMaster, ServiceError, UsageError

__all__ = ["IndexState", "SearchCluster", "ShardRecovery", "ShardState"]

log = logging.getLogger(__name__)

SUPPORTED_MAJORS = (8, 9)


@dataclass
class IndexState:
    name: str
    health: str
    docs: int
    extra: dict[str, Any] = field(default_factory=dict)


class SearchCluster(SnapshotOps, InventoryOps):
    """One Elasticsearch cluster. The constructor does no I/O."""

    # How often a long call says how far it got (a steady pace: a CI log is not flooded).
    progress_interval_s = 5.0

    def __init__(self, url: str, *, request_timeout_s: float = 60, api_key: str | None = None,
                 basic_auth: tuple[str, str] | None = None, ca_file: str | None = None,
                 guard: WritePolicy = UNRESTRICTED, other_nodes: list[str] | None = None) -> None:
        self.url = url
        # The cluster's other nodes: a request whose node is lost (killed, restarting) is sent
        # again to one of them, so losing a node is the cluster's event, not the client's.
        self.other_nodes = list(other_nodes or [])
        # Asked before every request that would change something (drdrill.core.ownership).
        self.guard = guard
        self._timeout = request_timeout_s
        # Credentials stay in the client's arguments: never in a repr, a log line or a report.
        self._auth: dict[str, Any] = {}
        if api_key:
            self._auth["api_key"] = api_key
        if basic_auth:
            self._auth["basic_auth"] = basic_auth
        if ca_file:
            self._auth["ca_certs"] = ca_file
        self._client: Elasticsearch | None = None

    def __repr__(self) -> str:
        return f"SearchCluster({self.url!r})"

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            self._client = guarded_client([self.url, *self.other_nodes], self.guard, request_timeout=self._timeout,
                                          max_retries=max(1, len(self.other_nodes)), retry_on_timeout=False,
                                          **self._auth)
        return self._client

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise ServiceError(f"Elasticsearch {self.url} unreachable during {action}: {exc}",
                               hint="is Elasticsearch running?") from exc
        except ApiError as exc:
            if no_master(exc):
                raise NoElectedMaster(f"Elasticsearch {action} failed: 503 {_reason(exc)}",
                                      hint=NO_MASTER_HINT) from exc
            raise ServiceError(f"Elasticsearch {action} failed: {exc.meta.status} {_reason(exc)}") from exc

    # --- cluster -------------------------------------------------------------------------

    def version(self) -> str:
        """The server's version, asked in plain JSON: any server answers that, whereas the
        client's versioned media type is refused by a server of an unsupported major."""
        try:
            _meta, body = self.client.transport.perform_request(
                "GET", "/_nodes/_local?filter_path=nodes.*.version",
                headers={**self._auth_headers(), "accept": "application/json"}, request_timeout=self._timeout)
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise ServiceError(f"Elasticsearch {self.url} unreachable while reading its version: {exc}",
                               hint="is Elasticsearch running?") from exc
        except ApiError as exc:
            raise ServiceError(f"Elasticsearch version: {exc.meta.status} {_reason(exc)}") from exc
        nodes = body.get("nodes", {}) if isinstance(body, dict) else {}
        return next(iter(str(n["version"]) for n in nodes.values()), "unknown")

    def compatibility(self) -> dict[str, str]:
        """The server and client versions and how they talk (recorded in every report).

        One client line (elasticsearch-py 8.x) for both supported majors: it speaks to 8.x
        natively and to 9.x through the server's REST API compatibility with 8; a 9.x client's
        media type is refused by every 8.x server. Older servers are refused here."""
        server = self.version()
        major = int(server.split(".", 1)[0]) if server.split(".", 1)[0].isdigit() else 0
        client_major = int(elasticsearch_version.split(".", 1)[0])
        if not SUPPORTED_MAJORS[0] <= major <= SUPPORTED_MAJORS[1]:
            raise UsageError(f"Elasticsearch {server} at {self.url} is not supported (8.x and 9.x are)",
                             hint="drill it with a drdrill release for that version")
        mode = "native" if major == client_major else f"REST API compatibility with {client_major}.x"
        return {"elasticsearch": server, "elasticsearch-py": elasticsearch_version, "elasticsearch_api": mode}

    def _auth_headers(self) -> dict[str, str]:
        if "api_key" in self._auth:
            return {"authorization": f"ApiKey {self._auth['api_key']}"}
        if "basic_auth" in self._auth:
            user, password = self._auth["basic_auth"]
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            return {"authorization": f"Basic {token}"}
        return {}

    def probe(self, timeout_s: float = 3) -> tuple[bool, str]:
        """Does the cluster answer, and how healthy is it (green/yellow is serving)?"""
        try:
            data = self.client.options(request_timeout=timeout_s, max_retries=0).cluster.health()
        except (TransportConnectionError, ConnectionTimeout) as exc:
            return False, f"not answering ({type(exc).__name__})"
        except ApiError as exc:
            return False, f"HTTP {exc.meta.status} {_reason(exc)}"
        status = str(data.get("status"))
        return status in ("green", "yellow"), f"cluster health {status}"

    def health(self, index: str | None = None) -> str:
        data = self._call("cluster health", self.client.cluster.health, index=index)
        return str(data["status"])

    def data_nodes(self) -> int:
        """How many data nodes the cluster has now (``_cluster/health``)."""
        return int(self._call("cluster health", self.client.cluster.health)["number_of_data_nodes"])

    def wait_for_green(self, indices: list[str], timeout_s: float) -> tuple[bool, str]:
        """Green and no shard still initialising or relocating; returns (ok, last status)."""
        try:
            data = self.client.options(request_timeout=timeout_s + 10).cluster.health(
                index=",".join(indices), wait_for_status="green", wait_for_no_initializing_shards=True,
                wait_for_no_relocating_shards=True, timeout=f"{max(1, int(timeout_s))}s",
            )
        except ApiError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            if exc.meta.status == 408 and "status" in body:  # still not green when the wait ran out
                return False, _health_text(body) + f" after {timeout_s:.0f}s"
            return False, f"health call failed: {exc.meta.status} {_reason(exc)}"
        except (TransportConnectionError, ConnectionTimeout) as exc:
            return False, f"Elasticsearch unreachable: {exc}"
        return (not data.get("timed_out") and data["status"] == "green"), _health_text(data)

    FAULT_SETTINGS = ("cluster.routing.allocation.disk.threshold_enabled",
                      "cluster.routing.allocation.disk.watermark.low", "cluster.routing.allocation.disk.watermark.high",
                      "cluster.routing.allocation.disk.watermark.flood_stage",
                      # a scenario may raise it, as the runbook's operator would
                      "indices.recovery.max_bytes_per_sec")

    def reset_fault_settings(self) -> None:
        """Clear the cluster settings a scenario may have changed (disk watermarks, recovery throttle)."""
        self._call("reset cluster settings", self.client.cluster.put_settings,
                   persistent={k: None for k in self.FAULT_SETTINGS}, transient={k: None for k in self.FAULT_SETTINGS})

    RECOVERY_THROTTLE = "indices.recovery.max_bytes_per_sec"
    # How many primaries a node initialises at once; a restored shard is one (default 4).
    INITIAL_PRIMARIES = "cluster.routing.allocation.node_initial_primaries_recoveries"

    def effective_settings(self, *keys: str) -> dict[str, str]:
        """Cluster settings as in force (transient over persistent over the defaults)."""
        data = self._call("read cluster settings", self.client.cluster.get_settings, include_defaults=True,
                          flat_settings=True)
        found: dict[str, str] = {}
        for key in keys:
            for level in ("transient", "persistent", "defaults"):
                value = (data.get(level) or {}).get(key)
                if value is not None:
                    found[key] = str(value)
                    break
        return found

    def recovery_throttle(self) -> str | None:
        """``indices.recovery.max_bytes_per_sec`` as in force (explicit or default), e.g. "40mb"."""
        return self.effective_settings(self.RECOVERY_THROTTLE).get(self.RECOVERY_THROTTLE)

    def set_recovery_throttle(self, value: str | None) -> None:
        """As the runbook's operator would (transient; None: back to the configured value)."""
        self._call("set the recovery throttle", self.client.cluster.put_settings,
                   transient={self.RECOVERY_THROTTLE: value})

    def cluster_state_work(self) -> ClusterStateWork:
        """The cluster-state updates Elasticsearch has counted since its nodes started, and the
        time the master spent on them (drdrill.core.cluster_state says which fields count)."""
        return cluster_state_work(self._call("read node stats", self.client.nodes.stats, metric="discovery"))

    def allocation_problem(self) -> str | None:
        """Why a shard is unassigned, in Elasticsearch's words, or None if none is."""
        try:
            data = self.client.cluster.allocation_explain()
        except ApiError:
            return None  # 400: no unassigned shard to explain
        decisions = [d for node in data.get("node_allocation_decisions", []) or [] for d in node.get("deciders") or []]
        reasons = [_first_sentence(str(d.get("explanation"))) for d in decisions if d.get("decision") == "NO"]
        unassigned = data.get("unassigned_info") or {}
        summary = _first_sentence(str(data.get("allocate_explanation") or unassigned.get("reason") or ""))
        cause = _root_cause(str(unassigned.get("details") or ""))
        parts = [*dict.fromkeys(reasons[:2]), summary, *([f"root cause: {cause}"] if cause else [])]
        return f"{data.get('index')}[{data.get('shard')}] unassigned: " + "; ".join(p for p in parts if p)

    # --- indices -------------------------------------------------------------------------

    def create_index(self, name: str, *, shards: int = 1, replicas: int = 0, mappings: dict | None = None,
                     wait_for_active_shards: str | None = None) -> None:
        self._call(f"create index {name}", self.client.indices.create, index=name,
                   settings={"number_of_shards": shards, "number_of_replicas": replicas}, mappings=mappings,
                   wait_for_active_shards=wait_for_active_shards)

    def indices(self, pattern: str) -> dict[str, IndexState]:
        try:
            rows = self.client.cat.indices(index=pattern, format="json", h="index,health,docs.count",
                                           expand_wildcards="open,closed")
        except NotFoundError:
            return {}
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise ServiceError(f"Elasticsearch {self.url} unreachable while listing indices") from exc
        listed = cast(list[dict[str, Any]], rows.body)  # format=json: one object per index
        return {r["index"]: IndexState(r["index"], r.get("health") or "unknown", int(r.get("docs.count") or 0))
                for r in listed}

    def indices_named(self, names: list[str]) -> dict[str, IndexState]:
        """The named indices that exist (a missing one is simply absent from the result). A few
        are asked for by name (as ``name*``: a pattern is never "not found"); many, by listing
        all of them once."""
        wanted = set(names)
        if not wanted:
            return {}
        listed: dict[str, IndexState] = {}
        if len(wanted) > LIST_ALL_ABOVE:
            listed = self.indices("*")
        else:
            for batch in batches(sorted(wanted), suffix="*"):
                listed.update(self.indices(",".join(f"{name}*" for name in batch)))
        return {name: state for name, state in listed.items() if name in wanted}

    def index_uuids(self, names: list[str]) -> dict[str, str]:
        """``index.uuid`` of each named index that exists: a re-created index gets a new one."""
        found: dict[str, str] = {}
        for batch in batches(sorted(self.indices_named(names))):
            data = self._call("read index settings", self.client.indices.get_settings, index=",".join(batch),
                              name="index.uuid")
            found.update({index: body["settings"]["index"]["uuid"] for index, body in data.items()})
        return found

    def bulk_index(self, documents: Any, *, chunk_size: int = 5000) -> int:
        """Index ``documents`` (bulk actions with ``_index``/``_id``/``_source``); returns how
        many were acknowledged, or raises naming the first rejection."""
        from elasticsearch.helpers import streaming_bulk

        ok = 0
        try:
            for success, info in streaming_bulk(self.client, documents, chunk_size=chunk_size, max_retries=2,
                                                raise_on_error=False):
                if not success:
                    raise ServiceError(f"bulk indexing failed: {info}")
                ok += 1
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise ServiceError(f"Elasticsearch {self.url} unreachable during bulk indexing") from exc
        return ok

    def index_documents(self, documents: list[tuple[str, str, dict[str, Any]]]) -> list[str | None]:
        """Index (index, id, document) triples in one bulk request; per document, None when it
        was acknowledged, else why not (one rejected document does not sink the others)."""
        operations: list[dict[str, Any]] = []
        for index, doc_id, document in documents:
            operations += [{"index": {"_index": index, "_id": doc_id}}, document]
        answer = self._call(f"bulk index {len(documents)} documents", self.client.bulk, operations=operations)
        return [None if 200 <= int(item["index"].get("status", 500)) < 300
                else str(item["index"].get("error", {}).get("type", item["index"].get("status")))
                for item in answer["items"]]

    def canary_state(self, index: str) -> tuple[int, int | None, datetime | None] | None:
        """(documents, highest ``seq``, newest ``written_at``) of a canary index; None if the
        index does not exist (after a recovery: nothing of it survived)."""
        try:
            self.client.indices.refresh(index=index)
            result = self.client.search(index=index, size=0, aggs={
                "max_seq": {"max": {"field": "seq"}}, "newest": {"max": {"field": "written_at"}}})
        except NotFoundError:
            return None
        except (TransportConnectionError, ConnectionTimeout, ApiError) as exc:
            raise ServiceError(f"cannot read canary index {index}: {type(exc).__name__}") from exc
        aggs = result["aggregations"]
        seq = aggs["max_seq"]["value"]
        newest = aggs["newest"].get("value_as_string")
        return (int(result["hits"]["total"]["value"]), int(seq) if seq is not None else None,
                datetime.fromisoformat(newest) if newest else None)

    def create_unassignable_index(self, name: str) -> None:
        """An index whose primary can never be placed (it requires a node that does not exist)."""
        self._call(f"create index {name}", self.client.indices.create, index=name, wait_for_active_shards="0",
                   settings={"number_of_shards": 1, "number_of_replicas": 0,
                             "index.routing.allocation.require._name": "no-such-node"})

    def set_disk_watermarks(self, low: str, high: str, flood: str) -> None:
        self._call("set disk watermarks", self.client.cluster.put_settings, persistent={
            "cluster.routing.allocation.disk.threshold_enabled": True,
            "cluster.routing.allocation.disk.watermark.low": low,
            "cluster.routing.allocation.disk.watermark.high": high,
            "cluster.routing.allocation.disk.watermark.flood_stage": flood,
        })

    def count(self, index: str, query: dict | None = None) -> int:
        return int(self._call(f"count {index}", self.client.count, index=index, query=query)["count"])

    def refresh(self, index: str) -> None:
        self._call(f"refresh {index}", self.client.indices.refresh, index=index)

    def delete_indices(self, pattern: str) -> list[str]:
        """Delete the indices matching ``pattern``, by name: clusters refuse wildcard deletes
        (``action.destructive_requires_name``), and naming them keeps the blast radius visible."""
        names = sorted(self.indices(pattern))
        for names_in_batch in batches(names):  # under Elasticsearch's 4 KB request line
            batch = ",".join(names_in_batch)
            self._call(f"delete indices {batch}", self.client.indices.delete, index=batch, ignore_unavailable=True)
        return names

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _health_text(data: Any) -> str:
    return (f"{data.get('status')}, {data.get('initializing_shards', '?')} initializing, "
            f"{data.get('unassigned_shards', '?')} unassigned")


def _first_sentence(text: str, limit: int = 300) -> str:
    """The explanation without the stack trace Elasticsearch may append to it."""
    first = text.split("\n", 1)[0].split(" Details: [", 1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _root_cause(details: str) -> str | None:
    """The last ``Caused by:`` of a Java failure, without its class path and stack frames."""
    causes = [line.split("Caused by:", 1)[1].strip() for line in details.splitlines() if "Caused by:" in line]
    if not causes:
        return None
    cause = causes[-1]
    name, _, message = cause.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {message}"[:300]



def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", {})
    if isinstance(error, dict):
        root = (error.get("root_cause") or [{}])[0]
        return str(root.get("reason") or error.get("reason") or error.get("type") or exc.message)
    return str(error or exc.message)

