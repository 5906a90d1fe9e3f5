"""Elasticsearch's snapshot side, part of the Elasticsearch adapter (``SearchCluster`` inherits
it): repositories, snapshots, restores and the recovery of restored shards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, NotFoundError

from drdrill.adapters.es_names import batches
from drdrill.core.completeness import snapshot_is_complete
from drdrill.errors import NoElectedMaster, ServiceError

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SnapshotInfo:
    repository: str
    name: str
    uuid: str
    state: str
    started_at: datetime | None
    finished_at: datetime | None
    indices: tuple[str, ...]
    shards_total: int
    shards_failed: int
    failures: tuple[str, ...] = ()
    # The user metadata the snapshot was taken with (drdrill tags its own).
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return snapshot_is_complete(self.state, self.shards_failed, self.shards_total)


@dataclass(frozen=True)
class ShardRecovery:
    index: str
    shard: int
    stage: str
    kind: str
    total_time_ms: int
    bytes_recovered: int
    # Of total_time_ms, the time spent copying the shard's files (the part that grows with its
    # size), and how long the recovery throttle held it back.
    copy_time_ms: int = 0
    throttled_ms: int = 0
    # What a snapshot recovery restores from: "<repository>/<snapshot>" ("" for other kinds).
    source: str = ""
    # When it began, by Elasticsearch's clock (epoch milliseconds; 0 if not said).
    start_time_ms: int = 0


@dataclass(frozen=True)
class AllocationDecision:
    """Elasticsearch's ``_cluster/allocation/explain`` of one unassigned shard copy."""

    can_allocate: str  # "yes", "no", "throttled", "awaiting_info", ...
    why: str
    # Per node, the deciders that said NO there (an empty tuple: the node would take it).
    refusals: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class ShardState:
    """One shard copy of a restored index, as ``_cat/shards`` shows it."""

    index: str
    shard: int
    primary: bool
    state: str  # STARTED, INITIALIZING, RELOCATING, UNASSIGNED
    unassigned_reason: str | None = None


def _ms_to_dt(value: Any) -> datetime | None:
    if value in (None, 0, "0"):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def snapshot_from_api(repository: str, data: dict[str, Any]) -> SnapshotInfo:
    shards = data.get("shards", {})
    failures = tuple(
        f"{f.get('index')}[{f.get('shard_id')}]: {f.get('reason')}" for f in data.get("failures", []) or []
    )
    return SnapshotInfo(
        repository=repository, name=data["snapshot"], uuid=data.get("uuid", ""), state=data.get("state", "UNKNOWN"),
        started_at=_ms_to_dt(data.get("start_time_in_millis")), finished_at=_ms_to_dt(data.get("end_time_in_millis")),
        indices=tuple(sorted(data.get("indices", []))), shards_total=int(shards.get("total", 0)),
        shards_failed=int(shards.get("failed", 0)), failures=failures, metadata=dict(data.get("metadata") or {}),
    )


class SnapshotOps:
    """The snapshot half of :class:`~drdrill.adapters.elasticsearch.SearchCluster`."""

    progress_interval_s: float

    if TYPE_CHECKING:
        @property
        def client(self) -> Elasticsearch: ...

        def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    def register_fs_repository(self, name: str, location: str, *, readonly: bool = False) -> None:
        self._call(f"register repository {name}", self.client.snapshot.create_repository, name=name,
                   repository={"type": "fs", "settings": {"location": location, "readonly": readonly,
                                                           "compress": True}})

    def register_s3_repository(self, name: str, bucket: str, base_path: str, *, readonly: bool = False) -> None:
        self._call(f"register repository {name}", self.client.snapshot.create_repository, name=name,
                   repository={"type": "s3", "settings": {"bucket": bucket, "base_path": base_path.rstrip("/"),
                                                           "readonly": readonly, "compress": True}})

    # Elasticsearch's documented default for a repository without max_snapshot_bytes_per_sec.
    DEFAULT_SNAPSHOT_THROTTLE = "40mb"

    def snapshot_throttle(self, repository: str) -> str:
        """The repository's ``max_snapshot_bytes_per_sec``: its own setting or the default."""
        found = self._call(f"read repository {repository}", self.client.snapshot.get_repository, name=repository)
        settings = (dict(found).get(repository) or {}).get("settings") or {}
        return str(settings.get("max_snapshot_bytes_per_sec") or self.DEFAULT_SNAPSHOT_THROTTLE)

    def repositories(self) -> dict[str, dict[str, Any]]:
        """Registered snapshot repositories: name → {type, settings}."""
        return dict(self._call("list repositories", self.client.snapshot.get_repository))

    def delete_repository(self, name: str) -> None:
        try:
            self.client.snapshot.delete_repository(name=name)
        except NotFoundError:
            return

    def create_snapshot(self, repository: str, name: str, indices: list[str], timeout_s: float, *,
                        metadata: dict[str, Any] | None = None, progress: Progress | None = None) -> SnapshotInfo:
        """Snapshot exactly ``indices`` (names, never a pattern) and wait for the result;
        ``progress`` hears how far it got, from the snapshot status API, while it runs."""
        result = self._while_reporting(
            lambda: self._call(
                f"snapshot {repository}/{name}",
                self.client.options(request_timeout=timeout_s).snapshot.create,
                repository=repository, snapshot=name, indices=",".join(indices), include_global_state=False,
                wait_for_completion=True, metadata=metadata,
            ), lambda: self._snapshot_progress(repository, name), progress, f"snapshot {name}")
        return snapshot_from_api(repository, result["snapshot"])

    def _snapshot_progress(self, repository: str, name: str) -> str | None:
        data = self.client.snapshot.status(repository=repository, snapshot=name)
        stats = (data.get("snapshots") or [{}])[0].get("stats", {})
        done, total = stats.get("processed", {}), stats.get("total", {})
        if not total.get("size_in_bytes"):
            return None
        return (f"{_mib(done.get('size_in_bytes', 0))}/{_mib(total['size_in_bytes'])} MiB, "
                f"{done.get('file_count', 0)}/{total.get('file_count', 0)} files")

    def _recovery_progress(self, indices: list[str]) -> str | None:
        data = self.client.indices.recovery(index=",".join(indices), active_only=True)
        parts = []
        for index, body in sorted(data.items()):
            for shard in body.get("shards", []):
                size, files = shard.get("index", {}).get("size", {}), shard.get("index", {}).get("files", {})
                parts.append(f"{index}[{shard.get('id')}] {shard.get('stage', '?').lower()} "
                             f"{_mib(size.get('recovered_in_bytes', 0))}/{_mib(size.get('total_in_bytes', 0))} MiB, "
                             f"{files.get('recovered', 0)}/{files.get('total', 0)} files")
        return "; ".join(parts[:4]) + (f"; ... {len(parts) - 4} more shards" if len(parts) > 4 else "") or None

    def _while_reporting(self, call: Callable[[], Any], poll: Callable[[], str | None], progress: Progress | None,
                         what: str) -> Any:
        """Run a blocking call (its answer stays the source of truth) and, while it runs, tell
        ``progress`` what the status API says, every :attr:`progress_interval_s`."""
        if progress is None:
            return call()
        outcome: list[Any] = []
        failure: list[BaseException] = []

        def worker() -> None:
            try:
                outcome.append(call())
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=worker, name=f"es-{what}", daemon=True)
        started = time.monotonic()
        thread.start()
        while thread.is_alive():
            thread.join(self.progress_interval_s)
            if thread.is_alive():
                try:
                    state = poll()
                except Exception as exc:  # progress is informative; the call itself decides
                    state = f"status unavailable ({type(exc).__name__})"
                progress(f"{what}: {state or 'starting'} ({time.monotonic() - started:.0f}s)")
        if failure:
            raise failure[0]
        return outcome[0]

    def snapshots(self, repository: str) -> list[SnapshotInfo]:
        data = self._call(f"list snapshots of {repository}", self.client.snapshot.get,
                          repository=repository, snapshot="_all")
        return sorted((snapshot_from_api(repository, s) for s in data.get("snapshots", [])),
                      key=lambda s: (s.started_at or datetime.min.replace(tzinfo=UTC), s.name))

    def snapshot_size(self, repository: str, name: str) -> int:
        data = self._call(f"snapshot status {name}", self.client.snapshot.status, repository=repository,
                          snapshot=name)
        stats = data["snapshots"][0].get("stats", {})
        return int(stats.get("total", {}).get("size_in_bytes", 0))

    def delete_snapshot(self, repository: str, name: str) -> None:
        self._call(f"delete snapshot {name}", self.client.snapshot.delete, repository=repository, snapshot=name)

    def restore(self, repository: str, name: str, indices: list[str], timeout_s: float, *,
                rename_prefix: str | None = None, progress: Progress | None = None) -> dict[str, Any]:
        """Restore and wait for completion; returns the shard summary Elasticsearch reports.

        ``rename_prefix``: restore beside the originals, as ``<prefix><name>``, without their
        aliases and with no replica (an isolated copy for a restore test on a live cluster)."""
        extra = _rename(rename_prefix)
        restored = [f"{rename_prefix or ''}{index}" for index in indices]
        result = self._while_reporting(
            lambda: self._call(
                f"restore {repository}/{name}",
                self.client.options(request_timeout=timeout_s).snapshot.restore,
                repository=repository, snapshot=name, indices=",".join(indices), include_global_state=False,
                wait_for_completion=True, **extra,
            ), lambda: self._recovery_progress(restored), progress, f"restore {name}")
        return dict(result.get("snapshot", {}))

    def snapshot(self, repository: str, name: str) -> SnapshotInfo:
        data = self._call(f"read snapshot {repository}/{name}", self.client.snapshot.get, repository=repository,
                          snapshot=name)
        return snapshot_from_api(repository, data["snapshots"][0])

    def aliases(self) -> dict[str, list[str]]:
        """Alias → indices (hidden and system indices aside)."""
        data = self._call("list aliases", self.client.indices.get_alias, expand_wildcards="open,closed")
        found: dict[str, list[str]] = {}
        for index, body in data.items():
            for alias in body.get("aliases", {}):
                found.setdefault(alias, []).append(index)
        return {alias: sorted(indices) for alias, indices in found.items()}

    def recoveries(self, indices: list[str]) -> list[ShardRecovery]:
        data: dict[str, Any] = {}
        for batch in batches(indices):  # under Elasticsearch's request-line limit
            data.update(dict(self._call("recovery status", self.client.indices.recovery, index=",".join(batch))))
        out = []
        for index, body in data.items():
            for shard in body.get("shards", []):
                files = shard.get("index", {})
                size = files.get("size", {})
                out.append(ShardRecovery(index, int(shard["id"]), shard.get("stage", "?"), shard.get("type", "?"),
                                         int(shard.get("total_time_in_millis", 0)),
                                         int(size.get("recovered_in_bytes", 0)),
                                         copy_time_ms=int(files.get("total_time_in_millis", 0)),
                                         throttled_ms=int(files.get("target_throttle_time_in_millis", 0))
                                         + int(files.get("source_throttle_time_in_millis", 0)),
                                         source=_snapshot_source(shard.get("source")),
                                         start_time_ms=int(shard.get("start_time_in_millis", 0))))
        return out

    def start_restore(self, repository: str, name: str, indices: list[str], *,
                      rename_prefix: str | None = None, copy_replicas: int = 0) -> None:
        """Start restoring and return once Elasticsearch has accepted it (the indices exist,
        their shards recover in the background): :meth:`shard_states` says how far it got.

        ``rename_prefix``: restore beside the originals, as ``<prefix><name>``, without their
        aliases and with ``copy_replicas`` replicas (an isolated copy for a restore test on a
        live cluster)."""
        self._call(f"restore {repository}/{name}", self.client.snapshot.restore, repository=repository,
                   snapshot=name, indices=",".join(indices), include_global_state=False, wait_for_completion=False,
                   **_rename(rename_prefix, copy_replicas))

    def await_health(self, indices: list[str], timeout_s: float, *, status: str | None = None,
                     active_shards: int | None = None) -> dict[str, Any] | None:
        """Wait, inside Elasticsearch (no polling), until ``indices`` are at least ``status``
        ("green": every copy started) or have ``active_shards`` started copies: the health
        then, or None if ``timeout_s`` ran out first. Elasticsearch answers the moment the
        cluster state says so. (A restoring index is yellow, not red, before any of its
        primaries started: "yellow" says nothing about a restore's progress.)"""
        try:
            data = self.client.options(request_timeout=timeout_s + 10).cluster.health(
                index=",".join(indices), wait_for_status=status, wait_for_active_shards=active_shards,
                timeout=f"{max(1, int(timeout_s * 1000))}ms")
        except ApiError as exc:
            if exc.meta.status == 408:  # not there yet when the wait ran out
                return None
            if no_master(exc):
                raise NoElectedMaster(f"Elasticsearch cluster health: 503 {exc.message}",
                                      hint=NO_MASTER_HINT) from exc
            raise ServiceError(f"Elasticsearch cluster health failed: {exc.meta.status} {exc.message}") from exc
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise ServiceError(f"Elasticsearch unreachable while waiting for the restore: {exc}",
                               hint="is Elasticsearch running?") from exc
        return None if data.get("timed_out") else dict(data)

    def shard_states(self, indices: list[str]) -> list[ShardState]:
        """Every shard copy of ``indices`` (names; an index not there yet has none)."""
        if not indices:
            return []
        def listing(names: list[str]) -> list[dict[str, Any]] | None:
            try:
                return list(self.client.cat.shards(index=",".join(names), format="json",
                                                   h="index,shard,prirep,state,unassigned.reason").body)
            except NotFoundError:  # one of them is not in the cluster state (yet)
                return None

        rows = []
        for batch in batches(indices):  # under Elasticsearch's request-line limit
            found = self._call("list shards", listing, batch)
            if found is None:
                found = [row for name in batch for row in self._call("list shards", listing, [name]) or []]
            rows += found
        return [ShardState(str(r["index"]), int(r["shard"]), r.get("prirep") == "p", str(r.get("state")),
                           r.get("unassigned.reason") or None) for r in rows]

    def shard_allocation(self, index: str, shard: int, *, primary: bool = True) -> AllocationDecision:
        """Whether Elasticsearch can allocate an unassigned shard copy ("yes", "no",
        "throttled", ...), why in its words (the reason's first sentence), and which deciders
        refused it on each node."""
        data = self._call(f"explain allocation of {index}[{shard}]", self.client.cluster.allocation_explain,
                          index=index, shard=shard, primary=primary)
        nodes = data.get("node_allocation_decisions", []) or []
        decisions = [d for node in nodes for d in node.get("deciders") or []]
        reasons = [str(d.get("explanation")).split("\n", 1)[0] for d in decisions if d.get("decision") == "NO"]
        unassigned = data.get("unassigned_info") or {}
        why = "; ".join(dict.fromkeys([*reasons[:2], str(data.get("allocate_explanation") or ""),
                                       str(unassigned.get("details") or "").split("\n", 1)[0]]))
        refusals = tuple(tuple(str(d.get("decider")) for d in node.get("deciders") or [] if d.get("decision") == "NO")
                         for node in nodes)
        return AllocationDecision(str(data.get("can_allocate", "unknown")), why.strip("; "), refusals)


# What Elasticsearch answers (HTTP 503) while its cluster has no elected master.
_NO_MASTER_ERRORS = frozenset({"master_not_discovered_exception", "cluster_block_exception"})
NO_MASTER_HINT = "the cluster has no elected master: are a majority of its master-eligible nodes up?"


def no_master(exc: ApiError) -> bool:
    return exc.meta.status == 503 and str(exc.error) in _NO_MASTER_ERRORS


def _snapshot_source(source: Any) -> str:
    if isinstance(source, dict) and source.get("repository") and source.get("snapshot"):
        return f"{source['repository']}/{source['snapshot']}"
    return ""


def _rename(prefix: str | None, replicas: int = 0) -> dict[str, Any]:
    """Restore parameters that put the indices beside the originals, as ``<prefix><name>``."""
    if prefix is None:
        return {}
    # ``replicas`` replicas (by default none: an isolated, light copy), and no lifecycle policy:
    # ILM must not act on a copy.
    return {"rename_pattern": "(.+)", "rename_replacement": prefix + "$1", "include_aliases": False,
            "index_settings": {"index.number_of_replicas": replicas},
            "ignore_index_settings": ["index.lifecycle.name"]}


def _mib(value: Any) -> str:
    return f"{int(value) / 2**20:.1f}"
