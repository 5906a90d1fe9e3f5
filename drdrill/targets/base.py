"""What every target hands to backups, restores and verification (service endpoints), and the
one interface every drill target implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from drdrill.adapters.platform import Platform
    from drdrill.adapters.s3 import ObjectStore
    from drdrill.core.layout import Tenant


@dataclass(frozen=True)
class DiskUsage:
    where: str
    total_bytes: int
    free_bytes: int

    # Full: what is left cannot hold a shard's next segment or a cluster-state write.
    FULL_BELOW_BYTES = 16 * 2**20

    @property
    def full(self) -> bool:
        return self.free_bytes < min(self.FULL_BELOW_BYTES, self.total_bytes // 100 + 1)

    def describe(self) -> str:
        used = 100 * (self.total_bytes - self.free_bytes) / self.total_bytes if self.total_bytes else 100.0
        return (f"{self.free_bytes / 2**20:.1f} MiB free of {self.total_bytes / 2**20:.0f} MiB ({used:.0f}% used) "
                f"on {self.where}" + ("; the disk is full" if self.full else ""))


SITE_SERVICES = ["elasticsearch", "postgres"]  # MinIO is the off-site backup store: it survives


class DrillTarget(Protocol):
    """Where a drill runs: the platform's services, and how a disaster, a redeployment and
    faults are done there. Constructors do no I/O; :meth:`start` does."""

    name: str
    # Backup-store keys (and their ETags) that existed before the run: never altered.
    protected: dict[str, str]

    def start(self) -> object: ...

    def platform(self, *, request_timeout_s: float = 60) -> Platform: ...

    def destroy(self, services: list[str]) -> list[str]: ...

    def redeploy(self, services: list[str], *, es_version: str | None = None) -> object: ...

    def process_state(self, service: str) -> str: ...

    def data_disk(self, service: str) -> DiskUsage | None:
        """Space on the service's data disk (None: the target cannot see it)."""
        ...

    def signal_service(self, service: str, signum: int) -> None: ...

    def rotate_store_credentials(self) -> None:
        """The object store stops accepting the credentials the platform holds (a rotated key)."""

    def heal(self) -> None:
        """Make the target whole again between scenarios (services up, platform empty)."""

    def undo_faults(self) -> None:
        """Put back what fault injection changed (paused services, rotated keys), keeping data."""

    def tenant_stores(self, tenants: list[Tenant]) -> dict[Tenant, ObjectStore]:
        """Each tenant's own credentials for the backup store, reaching only its path ({}: the
        target cannot make them)."""
        ...

    def widen_tenant_access(self, tenant: Tenant, other: Tenant) -> None:
        """Fault: the tenant's credentials also reach the other tenant's path."""

    def track_written(self, *, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None: ...

    def altered_protected(self) -> list[str]: ...

    def cleanup(self) -> None: ...

    def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]:
        """What the plan and the report say about the target (no secrets)."""
        ...

    def service_logs(self) -> dict[str, str]:
        """The last lines of each service's log (kept as evidence when a drill fails)."""
        ...


@runtime_checkable
class SwitchesTraffic(Protocol):
    """A target whose platform has a traffic switch (runbook step 6), held away from the
    workload while it is restored (Kubernetes: the Service)."""

    traffic_held: bool

    def switch_traffic(self, probe_index: str, expected_docs: int) -> dict[str, Any]: ...


@runtime_checkable
class ReportsNodes(Protocol):
    """A target whose services run on nodes it can ask about (Kubernetes): each node's check,
    whether it holds, and what was seen."""

    def node_probes(self) -> list[tuple[str, bool, str]]: ...


@runtime_checkable
class RestartsNodes(Protocol):
    """A target (or stack) that can crash one Elasticsearch node and start it again on its own
    data, as a supervisor would (the local target): how a node restarted mid-recovery is drilled."""

    def restart_node(self, node: str) -> float:
        """Seconds from the crash until the node had rejoined its cluster."""
        ...
