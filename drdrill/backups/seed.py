"""Deterministic test data: per tenant, indices with a chosen number of documents, and the
matching ``tenant_containers`` rows. The same spec always produces the same documents, so a
restore can be checked against what was written."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.adapters.postgres import MetadataDb
from drdrill.core.cluster_state import default_replicas
from drdrill.core.layout import Tenant
from drdrill.settings import DataSpec

log = logging.getLogger(__name__)

_LEVELS = ("debug", "info", "info", "info", "warn", "error")
_WORDS = ("order", "user", "payment", "search", "index", "cache", "login", "export", "report", "shard")


def index_names(tenant: Tenant, spec: DataSpec) -> list[str]:
    return [f"{tenant.index_prefix}data-{i:03d}" for i in range(spec.indices_per_tenant)]


def documents(index: str, count: int, seed: int) -> Iterator[dict[str, object]]:
    rng = random.Random(f"{seed}:{index}")
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        yield {
            "_index": index,
            "_id": str(n),
            "_source": {
                "@timestamp": (base + timedelta(seconds=n)).isoformat(),
                "level": rng.choice(_LEVELS),
                "message": " ".join(rng.choice(_WORDS) for _ in range(6)),
                "value": rng.randint(0, 1_000_000),
                "seq": n,
            },
        }


@dataclass(frozen=True)
class SeedResult:
    tenant: Tenant
    docs_by_index: dict[str, int]
    seconds: float


def seeded_replicas(cluster: SearchCluster, spec: DataSpec) -> int:
    """The spec's replicas, or as many as this cluster can hold of the platform's."""
    return spec.replicas if spec.replicas is not None else default_replicas(cluster.data_nodes())


def seed_tenant(cluster: SearchCluster, db: MetadataDb, tenant: Tenant, spec: DataSpec) -> SeedResult:
    """The tenant's indices, freshly created with the spec's documents, and rows naming them."""
    started = time.monotonic()
    counts: dict[str, int] = {}
    replicas = seeded_replicas(cluster, spec)
    for index in index_names(tenant, spec):
        cluster.delete_indices(index)
        cluster.create_index(index, replicas=replicas)
        counts[index] = cluster.bulk_index(documents(index, spec.docs_per_index, spec.seed))
        cluster.refresh(index)
    db.replace_tenant_rows(tenant.org_id, tenant.namespace, counts, tenant.index_prefix)
    result = SeedResult(tenant, counts, time.monotonic() - started)
    log.info("seeded %s: %d indices, %d documents in %.1fs", tenant, len(counts), sum(counts.values()),
             result.seconds)
    return result
