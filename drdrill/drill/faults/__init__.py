"""The fault catalogue: what can go wrong in a real recovery, injectable into a drill.

Each fault is a function of the drill (and, for tenant faults, a tenant). Faults that must
strike *during* a step are armed to fire as that step's phase begins. Faults touching the
backup store only ever alter objects this drill created itself (DESIGN.md, safety rules).
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from drdrill.adapters.postgres import PgConn
from drdrill.core import layout
from drdrill.core.layout import Tenant
from drdrill.drill.dumps import newest_dump
from drdrill.drill.faults.nodes import (
    data_node_killed_during_restore,
    data_node_restarted_during_restore,
    master_killed_during_restore,
)
from drdrill.errors import UsageError
from drdrill.host.readiness import wait_for

if TYPE_CHECKING:
    from drdrill.drill.session import Drill

log = logging.getLogger(__name__)


def _own_object(drill: Drill, key: str) -> None:
    """Faults may only alter what this drill's own backup wrote, never what was there before."""
    if key in drill.target.protected or any(k.startswith(key) for k in drill.target.protected if key.endswith("/")):
        raise UsageError(f"fault injection refuses to alter {key}: it existed before this drill")
    written = set()
    if drill.backup is not None:
        written |= {m.key for m in drill.backup.metadata} | {m.checksum_key for m in drill.backup.metadata}
        written |= {f"{s.tenant}/" for s in drill.backup.snapshots}
    if key not in written and not any(key.startswith(prefix) for prefix in written if prefix.endswith("/")):
        raise UsageError(f"fault injection refuses to alter {key}: this drill did not create it")


def _newest_all_dump(drill: Drill) -> str:
    key = newest_dump(drill.platform, layout.ALL_SCOPE).key
    _own_object(drill, key)
    return key


# --- the object store ---------------------------------------------------------------------


def minio_down(drill: Drill) -> None:
    drill.target.signal_service("minio", signal.SIGKILL)


def minio_hangs(drill: Drill) -> None:
    drill.target.signal_service("minio", signal.SIGSTOP)


def minio_rejects_credentials(drill: Drill) -> None:
    """MinIO's key was rotated and the platform still holds the old one: every client that
    uses the platform's credentials (drdrill's restore included) is refused."""
    drill.target.rotate_store_credentials()
    drill.reconnect()


def dump_corrupted(drill: Drill) -> None:
    key = _newest_all_dump(drill)
    data = bytearray(drill.platform.store.get_bytes(key))
    data[len(data) // 2] ^= 0xFF
    drill.platform.store.put_bytes(key, bytes(data))


def dump_truncated(drill: Drill) -> None:
    """Half the dump, without drdrill's tag and without a checksum record: what an interrupted
    run of the platform's own job (which writes neither) leaves behind under the same name."""
    key = _newest_all_dump(drill)
    store = drill.platform.store
    data = store.get_bytes(key)
    store.put_bytes(key, data[: (len(data) // 2) // 16 * 16])  # no tags: the platform's job's object
    store.delete([layout.checksum_key(key)])


def dump_deleted(drill: Drill) -> None:
    key = _newest_all_dump(drill)
    drill.platform.store.delete([key, layout.checksum_key(key)])


def checksum_altered(drill: Drill) -> None:
    key = _newest_all_dump(drill)
    drill.platform.store.put_bytes(layout.checksum_key(key), layout.checksum_record("0" * 64, key).encode())


def wrong_password(drill: Drill) -> None:
    drill.restore_password = secrets.token_urlsafe(24).encode()


def legacy_kdf_assumed(drill: Drill) -> None:
    drill.restore_kdf = replace(drill.settings.kdf, md="md5")


def _tenant_objects(drill: Drill, tenant: Tenant) -> list[str]:
    _own_object(drill, tenant.repo_prefix)
    return [o.key for o in drill.platform.store.list(tenant.repo_prefix)]


def repository_deleted(drill: Drill, tenant: Tenant) -> None:
    drill.platform.store.delete(_tenant_objects(drill, tenant))


def credentials_widened(drill: Drill, tenant: Tenant, other: Tenant) -> None:
    """The policy of a tenant's backup credentials was written too wide: it reaches another
    tenant's path too (a copy-pasted policy, a wildcard)."""
    drill.target.widen_tenant_access(tenant, other)


def repository_swapped(drill: Drill, tenant: Tenant, other: Tenant) -> None:
    """The tenant's prefix now holds another tenant's repository (a mis-pathed backup job)."""
    store = drill.platform.store
    store.delete(_tenant_objects(drill, tenant))
    for key in _tenant_objects(drill, other):
        store.put_bytes(tenant.repo_prefix + key[len(other.repo_prefix):], store.get_bytes(key))


def data_blob_corrupted(drill: Drill, tenant: Tenant) -> None:
    """Flip bytes in the largest data blob of the tenant's repository (bit rot in the store)."""
    store = drill.platform.store
    blobs = [o for o in store.list(tenant.repo_prefix + "indices/") if o.key.rsplit("/", 1)[-1].startswith("__")]
    if not blobs:
        raise UsageError(f"tenant {tenant} has no data blob to corrupt")
    _own_object(drill, tenant.repo_prefix)
    target = max(blobs, key=lambda o: o.size)
    data = bytearray(store.get_bytes(target.key))
    for offset in range(len(data) // 4, len(data) // 4 + 64):
        data[offset] ^= 0x5A
    store.put_bytes(target.key, bytes(data))


def index_latest_corrupted(drill: Drill, tenant: Tenant) -> None:
    _own_object(drill, tenant.repo_prefix)
    drill.platform.store.put_bytes(tenant.repo_prefix + "index.latest", (999).to_bytes(8, "big"))


# --- Elasticsearch ------------------------------------------------------------------------


def elasticsearch_down(drill: Drill) -> None:
    drill.target.signal_service("elasticsearch", signal.SIGKILL)


def elasticsearch_hangs(drill: Drill) -> None:
    drill.target.signal_service("elasticsearch", signal.SIGSTOP)


def elasticsearch_killed_during_restore(drill: Drill) -> None:
    """Armed: kills Elasticsearch shortly after the snapshot restore has begun."""
    def strike() -> None:
        timer = threading.Timer(0.3, drill.target.signal_service, ("elasticsearch", signal.SIGKILL))
        timer.daemon = True
        timer.start()
    drill.arm("restore-snapshots", strike)


def disk_full(drill: Drill) -> None:
    """No node has the free space the allocator demands: shards cannot be placed, as on a full
    disk. Absolute watermarks far above any real disk make every node 'full'. Elasticsearch
    only applies them once it has collected disk usage, so a probe index confirms the fault
    is in force before the drill goes on (bounded wait)."""
    cluster = drill.platform.cluster
    cluster.set_disk_watermarks(low="3pb", high="2pb", flood="1pb")
    probe = "drdrill-disk-full-probe"

    def in_force() -> tuple[bool, str]:
        cluster.delete_indices(probe)
        cluster.create_index(probe, wait_for_active_shards="0")
        time.sleep(1)
        health = cluster.indices(probe).get(probe)
        return bool(health and health.health == "red"), f"a new index is {health.health if health else 'missing'}"
    try:
        wait_for("the disk-full fault", in_force, timeout_s=60, interval_s=0)
    finally:
        cluster.delete_indices(probe)


def replicas_beyond_nodes(drill: Drill) -> None:
    """Before the platform is seeded: its indices keep as many replicas as the cluster has data
    nodes, one more than it can place (a replica never shares a node with a copy of its shard).
    A restore into it stays yellow for ever: the cluster is too small for its replicas."""
    drill.settings.data = replace(drill.settings.data, replicas=drill.platform.cluster.data_nodes())


def snapshot_cannot_complete(drill: Drill, tenant: Tenant) -> None:
    """An index of the tenant (it has its row) whose primary can never be assigned: its
    snapshot cannot be complete (PARTIAL with partial snapshots allowed, refused otherwise)."""
    index = f"{tenant.index_prefix}unassigned"
    drill.platform.cluster.create_unassignable_index(index)
    drill.platform.db.add_container_row(tenant.org_id, tenant.namespace, "unassigned", index)


# --- PostgreSQL ---------------------------------------------------------------------------


def postgres_down(drill: Drill) -> None:
    drill.target.signal_service("postgres", signal.SIGKILL)


def postgres_hangs_during_backup(drill: Drill) -> None:
    """Armed: PostgreSQL is paused (SIGSTOP) while the nightly backup runs. Every wait on it
    is bounded, so the backup fails within the drill's budget instead of hanging."""
    drill.arm("backup", lambda: drill.target.signal_service("postgres", signal.SIGSTOP))


def _admin(drill: Drill) -> PgConn:
    admin = drill.platform.admin
    if admin is None:
        raise UsageError("this fault needs the target's admin credentials")
    return admin


def password_changed(drill: Drill) -> None:
    db = drill.platform.db
    db.set_password(_admin(drill), db.conn.user, secrets.token_urlsafe(16))


def login_revoked(drill: Drill) -> None:
    drill.platform.db.revoke_login(_admin(drill), drill.platform.db.conn.user)


def table_unreadable(drill: Drill) -> None:
    """Armed for verification: after the restore, tenant_containers changes owner and the
    platform's user loses every right on it (a DBA's migration gone wrong)."""
    drill.arm("verify", lambda: drill.platform.db.take_table_away(_admin(drill)))


SIMPLE_FAULTS: dict[str, Callable[[Drill], None]] = {
    "MinIO goes down": minio_down,
    "MinIO hangs": minio_hangs,
    "MinIO rejects the platform's credentials": minio_rejects_credentials,
    "the newest metadata dump is corrupted": dump_corrupted,
    "the newest metadata dump is truncated": dump_truncated,
    "the newest metadata dump is deleted": dump_deleted,
    "the checksum record of the newest metadata dump is altered": checksum_altered,
    "the restore is given the wrong password": wrong_password,
    "the restore assumes the legacy md5 key derivation": legacy_kdf_assumed,
    "Elasticsearch goes down": elasticsearch_down,
    "Elasticsearch hangs": elasticsearch_hangs,
    "Elasticsearch will be killed during the snapshot restore": elasticsearch_killed_during_restore,
    "an Elasticsearch data node will be killed during the snapshot restore": data_node_killed_during_restore,
    "an Elasticsearch data node will be restarted during the snapshot restore": data_node_restarted_during_restore,
    "the elected Elasticsearch master will be killed during the snapshot restore": master_killed_during_restore,
    "the disk of Elasticsearch is full": disk_full,
    "the platform's indices have more replicas than the cluster has nodes for": replicas_beyond_nodes,
    "PostgreSQL goes down": postgres_down,
    "PostgreSQL hangs during the nightly backup": postgres_hangs_during_backup,
    "the platform user's database password was changed": password_changed,
    "the platform user may no longer log in to PostgreSQL": login_revoked,
    "the platform user will lose its rights on tenant_containers": table_unreadable,
}

TENANT_FAULTS: dict[str, Callable[[Drill, Tenant], None]] = {
    "repository is deleted": repository_deleted,
    "snapshot has a corrupted data blob": data_blob_corrupted,
    "repository's index.latest is corrupted": index_latest_corrupted,
    "snapshot cannot complete": snapshot_cannot_complete,
}

