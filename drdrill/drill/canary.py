"""Canary writes: timestamped documents and rows per tenant, written continuously until the
disaster, so the data actually lost (RPO) is measured rather than assumed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.adapters.platform import Platform
from drdrill.adapters.postgres import MetadataDb
from drdrill.core.layout import Tenant

log = logging.getLogger(__name__)

STORES = ("elasticsearch", "postgres")


def canary_index(tenant: Tenant) -> str:
    # Under the tenant's index prefix, so the tenant's snapshot includes it like any index.
    return f"{tenant.index_prefix}canary"


@dataclass
class CanaryLog:
    """Acknowledged canary writes per (tenant key, store): (seq, written_at, acked_at) in order."""

    acked: dict[tuple[str, str], list[tuple[int, datetime, datetime]]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def acked_before(self, tenant: str, store: str, moment: datetime) -> int:
        """Writes acknowledged before ``moment``: a backup that started later must hold them."""
        return sum(1 for _seq, _written, acked in self.acked.get((tenant, store), []) if acked < moment)

    def written_by(self, tenant: str, store: str, moment: datetime) -> int:
        """Writes begun by ``moment``: a backup that ended then can hold at most these."""
        return sum(1 for _seq, written, _acked in self.acked.get((tenant, store), []) if written <= moment)

    def total(self, tenant: str, store: str) -> int:
        return len(self.acked.get((tenant, store), []))

    def newest(self, tenant: str, store: str) -> datetime | None:
        rows = self.acked.get((tenant, store))
        return rows[-1][1] if rows else None


class CanaryWriter:
    """A background thread writing one canary per tenant and store every ``interval_s``.

    ``written_at`` is taken before the write and recorded only once the write is
    acknowledged, so every recorded canary is one the platform confirmed it had."""

    def __init__(self, cluster: SearchCluster, db: MetadataDb, tenants: list[Tenant], *,
                 interval_s: float = 0.5, write_timeout_s: float = 15,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.cluster, self.db, self.tenants = cluster, db, tenants
        self.interval_s, self.write_timeout_s = interval_s, write_timeout_s
        self.clock = clock or (lambda: datetime.now(UTC))
        self.log = CanaryLog()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq: dict[tuple[str, str], int] = {}

    def prepare(self) -> None:
        for tenant in self.tenants:
            index = canary_index(tenant)
            self.cluster.delete_indices(index)
            self.cluster.create_index(index, mappings={"properties": {"written_at": {"type": "date"},
                                                                      "seq": {"type": "long"}}})
        self.db.clear_canaries()

    def start(self) -> None:
        self.log.started_at = self.clock()
        self._thread = threading.Thread(target=self._run, name="canary-writer", daemon=True)
        self._thread.start()

    def stop(self) -> CanaryLog:
        """Stop writing; the log returned is a frozen copy. A writer still inside a hung call
        after its write deadline is recorded as an error: its write could land after the
        disaster, so the measurement is uncertain."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.write_timeout_s + 5)
            if self._thread.is_alive():
                self.log.errors.append("canary writer still blocked in a write when the disaster struck")
        self.log.stopped_at = self.clock()
        return CanaryLog({k: list(v) for k, v in self.log.acked.items()}, list(self.log.errors),
                         self.log.started_at, self.log.stopped_at)

    def _run(self) -> None:
        try:
            with self.db.canary_session(self.write_timeout_s) as write_row:
                while not self._stop.is_set():
                    for tenant in self.tenants:
                        self._write_es(tenant)
                        self._write_pg(write_row, tenant)
                    self._stop.wait(self.interval_s)
        except Exception as exc:  # a dead writer must show: without canaries RPO is unmeasured
            self.log.errors.append(f"canary writer died: {type(exc).__name__}: {exc}")

    def _next(self, tenant: Tenant, store: str) -> int:
        key = (tenant.key, store)
        seq = self._seq.get(key, 0)
        self._seq[key] = seq + 1
        return seq

    def _ack(self, tenant: Tenant, store: str, seq: int, at: datetime) -> None:
        self.log.acked.setdefault((tenant.key, store), []).append((seq, at, self.clock()))

    def _write_es(self, tenant: Tenant) -> None:
        seq = self._next(tenant, "elasticsearch")
        at = self.clock()
        try:
            self.cluster.index_document(canary_index(tenant), str(seq), {"seq": seq, "written_at": at.isoformat()})
            self._ack(tenant, "elasticsearch", seq, at)
        except Exception as exc:
            self._seq[(tenant.key, "elasticsearch")] = seq  # retry the same seq: keep them contiguous
            self.log.errors.append(f"{tenant} elasticsearch: {type(exc).__name__}")

    def _write_pg(self, write_row: Callable[[str, str, int, datetime], None], tenant: Tenant) -> None:
        seq = self._next(tenant, "postgres")
        at = self.clock()
        try:
            write_row(tenant.org_id, tenant.namespace, seq, at)
            self._ack(tenant, "postgres", seq, at)
        except Exception as exc:
            self._seq[(tenant.key, "postgres")] = seq
            self.log.errors.append(f"{tenant} postgres: {type(exc).__name__}")


# --- what survived a recovery -------------------------------------------------------------


def canary_state(platform: Platform, tenant: Tenant, store: str) -> tuple[int, int | None, datetime | None]:
    """How many canaries of the tenant a store holds, the highest sequence number, and the
    newest write time (0, None, None when none survived)."""
    if store == "elasticsearch":
        return platform.cluster.canary_state(canary_index(tenant)) or (0, None, None)
    return platform.db.canary_state(tenant.org_id, tenant.namespace)


def newest_surviving(platform: Platform, tenants: list[Tenant]) -> dict[tuple[str, str], datetime | None]:
    """The newest canary write found per (tenant, store): what RPO is measured from."""
    return {(tenant.key, store): canary_state(platform, tenant, store)[2] for tenant in tenants for store in STORES}
