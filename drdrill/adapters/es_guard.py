"""Every request the Elasticsearch client sends passes here first: what it would change, as
:class:`~drdrill.core.ownership.Write` values, judged by the target's policy before anything is
sent. The client's own endpoint id and path parts say what a request is (no URL parsing), and
what is not known to be a read is a write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from elasticsearch import Elasticsearch

from drdrill.core.ownership import UNRESTRICTED, Write, WritePolicy

# Endpoints that read, whatever their HTTP method (POST carries a query body).
_READS = frozenset({
    "search", "count", "msearch", "mget", "field_caps", "search_shards", "explain", "termvectors",
    "mtermvectors", "open_point_in_time", "close_point_in_time", "scroll", "clear_scroll", "info", "ping",
    "cluster.allocation_explain", "indices.analyze", "indices.validate_query", "snapshot.status",
})
# Endpoints that write to the indices their path names.
_INDEX_CREATE = frozenset({"indices.create"})
_INDEX_DELETE = frozenset({"indices.delete"})


def writes_of(method: str, endpoint_id: str | None, path: str, path_parts: Mapping[str, Any] | None,
              body: Any) -> list[Write]:
    """What a request would change ([] for a read)."""
    endpoint = endpoint_id or ""
    if method in ("GET", "HEAD") or endpoint in _READS:
        return []
    parts = dict(path_parts or {})

    def names(key: str) -> list[str]:
        value = parts.get(key)
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        # The client's path parts are URL-quoted, commas and * kept as they are.
        return [unquote(n) for n in str(value).split(",")] if value not in (None, "") else []

    if endpoint == "snapshot.create_repository":
        return [Write("elasticsearch", "repository", n, "create", endpoint) for n in names("name")]
    if endpoint == "snapshot.delete_repository":
        return [Write("elasticsearch", "repository", n, "delete", endpoint) for n in names("name")]
    if endpoint in ("snapshot.create", "snapshot.delete", "snapshot.verify_repository", "snapshot.cleanup_repository",
                    "snapshot.clone"):
        repositories = names("repository") or names("name")
        return [Write("elasticsearch", "repository", n, "write", endpoint) for n in repositories]
    if endpoint == "snapshot.restore":
        return _restore_writes(body if isinstance(body, Mapping) else {})
    if endpoint in _INDEX_CREATE:
        return [Write("elasticsearch", "index", n, "create", endpoint) for n in names("index")]
    if endpoint in _INDEX_DELETE:
        return [Write("elasticsearch", "index", n, "delete", endpoint) for n in names("index")]
    if endpoint.startswith("cluster."):
        return [Write("elasticsearch", "cluster", "", "write", endpoint)]
    indices = names("index")
    if indices:
        return [Write("elasticsearch", "index", n, "write", endpoint or path) for n in indices]
    return [Write("elasticsearch", "request", "", "write", f"{method} {endpoint or path}")]


def _restore_writes(body: Mapping[str, Any]) -> list[Write]:
    """A restore creates an index per restored name: with drdrill's rename (``(.+)`` →
    ``<prefix>$1``) each is the prefix + the snapshot's name; any other restore would create
    (or overwrite) indices under names the policy has to judge as they are."""
    requested = [i for i in str(body.get("indices") or "").split(",") if i]
    writes: list[Write] = []
    if body.get("include_global_state"):
        writes.append(Write("elasticsearch", "cluster", "", "write", "snapshot.restore with global state"))
    pattern, replacement = body.get("rename_pattern"), str(body.get("rename_replacement") or "")
    if not requested:
        return [*writes, Write("elasticsearch", "index", "*", "create", "snapshot.restore of every index")]
    if pattern is None:
        return writes + [Write("elasticsearch", "index", i, "create", "snapshot.restore") for i in requested]
    if pattern == "(.+)" and replacement.endswith("$1") and "$" not in replacement[:-2]:
        prefix = replacement[:-2]
        return writes + [Write("elasticsearch", "index", prefix + i, "create", "snapshot.restore") for i in requested]
    return [*writes, Write("elasticsearch", "index", f"{pattern}->{replacement}", "create", "snapshot.restore")]


class GuardedElasticsearch(Elasticsearch):
    """The official client, asking a :class:`WritePolicy` before every request it sends."""

    _guard: WritePolicy = UNRESTRICTED

    def perform_request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                        headers: Mapping[str, str] | None = None, body: Any | None = None,
                        endpoint_id: str | None = None, path_parts: Mapping[str, Any] | None = None) -> Any:
        for write in writes_of(method, endpoint_id, path, path_parts, body):
            self._guard.check(write)
        return super().perform_request(method, path, params=params, headers=headers, body=body,
                                       endpoint_id=endpoint_id, path_parts=path_parts)

    def options(self, *args: Any, **kwargs: Any) -> Any:
        # A client with other options is a new instance: it keeps the guard.
        client = super().options(*args, **kwargs)
        client._guard = self._guard
        return client


def guarded_client(hosts: str | list[str], guard: WritePolicy, **kwargs: Any) -> GuardedElasticsearch:
    client = GuardedElasticsearch(hosts, **kwargs)
    client._guard = guard
    return client
