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
from drdrill.adapters.postgres import CanaryRow, MetadataDb
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
        # One request per store and round, whatever the number of tenants: a round stays a
        # fraction of the interval with 1,000 tenants, so every tenant's canaries stay dense.
        try:
            with self.db.canary_session(self.write_timeout_s) as write_rows:
                while not self._stop.is_set():
                    self._write_es()
                    self._write_pg(write_rows)
                    self._stop.wait(self.interval_s)
        except Exception as exc:  # a dead writer must show: without canaries RPO is unmeasured
            self.log.errors.append(f"canary writer died: {type(exc).__name__}: {exc}")

    def _round(self, store: str) -> list[tuple[Tenant, int]]:
        """The next sequence number of every tenant in ``store``."""
        numbered = []
        for tenant in self.tenants:
            key = (tenant.key, store)
            numbered.append((tenant, self._seq.get(key, 0)))
        return numbered

    def _settle(self, store: str, numbered: list[tuple[Tenant, int]], at: datetime,
                failures: list[str | None]) -> None:
        """Record the acknowledged writes; a failed one keeps its seq for the next round, so
        each tenant's sequence stays contiguous."""
        acked_at = self.clock()
        for (tenant, seq), failure in zip(numbered, failures, strict=True):
            if failure is None:
                self._seq[(tenant.key, store)] = seq + 1
                self.log.acked.setdefault((tenant.key, store), []).append((seq, at, acked_at))
            else:
                self.log.errors.append(f"{tenant} {store}: {failure}")

    def _write_es(self) -> None:
        numbered = self._round("elasticsearch")
        at = self.clock()
        try:
            failures = self.cluster.index_documents(
                [(canary_index(tenant), str(seq), {"seq": seq, "written_at": at.isoformat()})
                 for tenant, seq in numbered])
        except Exception as exc:
            failures = [type(exc).__name__] * len(numbered)
        self._settle("elasticsearch", numbered, at, failures)

    def _write_pg(self, write_rows: Callable[[list[CanaryRow]], None]) -> None:
        numbered = self._round("postgres")
        at = self.clock()
        try:
            write_rows([(tenant.org_id, tenant.namespace, seq, at) for tenant, seq in numbered])
            failures: list[str | None] = [None] * len(numbered)
        except Exception as exc:
            failures = [type(exc).__name__] * len(numbered)
        self._settle("postgres", numbered, at, failures)


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
