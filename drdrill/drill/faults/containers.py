"""Faults only the containers target can make, for real: the object store's network cut or
resetting connections (Toxiproxy and ``docker network disconnect``), Elasticsearch OOM-killed
by the kernel under a memory limit, and Elasticsearch's data disk actually full.
On another target each is a usage error naming the target it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from drdrill.adapters.toxiproxy import bandwidth, latency, reset_peer
from drdrill.errors import UsageError
from drdrill.host.readiness import wait_for

if TYPE_CHECKING:
    from drdrill.drill.session import Drill
    from drdrill.targets.containers.target import ContainersDrillTarget


def _containers(drill: Drill) -> ContainersDrillTarget:
    from drdrill.targets.containers.target import ContainersDrillTarget

    if not isinstance(drill.target, ContainersDrillTarget):
        raise UsageError(f"this fault needs --target containers (the drill runs on {drill.target.name})",
                         hint="drdrill run features/faults/containers.feature --target containers")
    return drill.target


def store_partitioned(drill: Drill) -> None:
    _containers(drill).partition_store()


def store_partitioned_during_backup(drill: Drill) -> None:
    target = _containers(drill)
    drill.arm("backup", target.partition_store)


def store_partitioned_during_restore(drill: Drill) -> None:
    target = _containers(drill)
    drill.arm("restore-snapshots", target.partition_store)


def store_slowed(drill: Drill, latency_ms: int, kib_per_s: int) -> None:
    """Every reply of the store ``latency_ms`` late and at most ``kib_per_s`` towards its clients."""
    toxics = [t for t in (latency(latency_ms) if latency_ms else None, bandwidth(kib_per_s) if kib_per_s else None)
              if t is not None]
    _containers(drill).slow_store(toxics)


def store_resets_connections(drill: Drill) -> None:
    _containers(drill).slow_store([reset_peer()])


def elasticsearch_oom_killed_during_restore(drill: Drill) -> None:
    """Armed: as the snapshot restore begins, Elasticsearch's container runs out of memory and
    the kernel kills its JVM; the restore goes on against what is left (bounded wait)."""
    target = _containers(drill)

    def strike() -> None:
        target.oom_kill("elasticsearch")
        wait_for("the OOM kill of Elasticsearch", lambda: (target.process_state("elasticsearch") != "running",
                                                          target.process_state("elasticsearch")), timeout_s=60)
    drill.arm("restore-snapshots", strike)


def elasticsearch_disk_really_full(drill: Drill) -> None:
    _containers(drill).fill_disk()


CONTAINER_FAULTS: dict[str, Callable[[Drill], None]] = {
    "the object store is cut off from the network": store_partitioned,
    "the object store will be cut off from the network during the nightly backup": store_partitioned_during_backup,
    "the object store will be cut off from the network during the snapshot restore": store_partitioned_during_restore,
    "the object store resets every connection": store_resets_connections,
    "Elasticsearch will be OOM-killed as the snapshot restore begins": elasticsearch_oom_killed_during_restore,
    "the data disk of Elasticsearch is really full": elasticsearch_disk_really_full,
}
