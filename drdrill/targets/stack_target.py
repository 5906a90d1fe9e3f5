"""A target over a stack drdrill drives (:class:`DrillStack`: the local processes, the
containers, the platform's namespace on Kubernetes), started for a drill or already running
(``--stack``): the verbs every stack-backed place shares."""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
import signal
from collections.abc import Sequence
from typing import Any, Protocol

from drdrill.adapters.platform import Endpoints, Platform
from drdrill.adapters.s3 import ObjectStore, StoreAdmin
from drdrill.core.layout import Tenant
from drdrill.core.ownership import RESTORE_COPIES_PREFIX
from drdrill.errors import HarnessError, UsageError
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import StackSettings
from drdrill.targets.base import DiskUsage, RestartsNodes

log = logging.getLogger(__name__)


class DrillStack(Protocol):
    """The verbs a drill needs of the services it drills: the local, container and Kubernetes
    stacks each have them."""

    stack_name: str
    settings: StackSettings

    def up(self) -> Endpoints: ...

    def endpoints(self) -> Endpoints: ...

    def destroy(self, services: list[str]) -> list[str]: ...

    def redeploy(self, services: list[str], *, wipe: bool = True, es_version: str | None = None) -> Endpoints: ...

    def rotate_minio_secret(self) -> None: ...

    def redeploy_hooks(self, services: list[str]) -> None: ...

    def log_tails(self, lines: int = 200) -> dict[str, str]: ...

    def signal_service(self, service: str, signum: int) -> None: ...

    def data_disk(self, service: str) -> DiskUsage | None: ...

    def process_state(self, service: str) -> str: ...

    def down(self, *, purge: bool = False) -> list[str]: ...


class StackDrillTarget:
    """A target over a stack drdrill drives (local processes; containers and Kubernetes subclass
    it). ``owned``: started for this drill and torn down after it."""

    name = "local"

    def __init__(self, stack: DrillStack, *, owned: bool = True) -> None:
        self.stack, self.owned = stack, owned
        self._endpoints: Endpoints | None = None
        # Backup-store keys (and their ETags) that existed before the run: never altered.
        self.protected: dict[str, str] = {}
        # What this run wrote into the backup store, so that exactly that can be removed.
        self.written_keys: set[str] = set()
        self.written_prefixes: set[str] = set()
        self._rotated = False
        self._tenant_users: dict[str, str] = {}  # MinIO user -> secret, made by tenant_stores
        # Another Elasticsearch than the stack's own, deployed by a scenario (None: the stack's).
        self._es_version: str | None = None

    def start(self) -> Endpoints:
        self._endpoints = self.stack.up() if self.owned else self.stack.endpoints()
        store = self.platform().store
        store.ensure_bucket()
        self.protected = {o.key: o.etag for o in store.list("")}
        return self._endpoints

    def altered_protected(self) -> list[str]:
        """Pre-existing backup objects that are now missing or different (must be none)."""
        now = {o.key: o.etag for o in self.platform().store.list("")}
        return sorted(k for k, etag in self.protected.items() if now.get(k) != etag)

    def platform(self, *, request_timeout_s: float = 60) -> Platform:
        if self._endpoints is None:
            self._endpoints = self.stack.endpoints()
        return platform_of(self._endpoints, request_timeout_s=request_timeout_s)

    def destroy(self, services: list[str]) -> list[str]:
        return self.stack.destroy(services)

    def redeploy(self, services: list[str], *, wipe: bool = True, es_version: str | None = None) -> Endpoints:
        if es_version is not None:
            StackSettings(es_version=es_version)  # a usage error for a version drdrill cannot run
            self._es_version = es_version
        self._endpoints = self.stack.redeploy(services, wipe=wipe, es_version=es_version)
        return self._endpoints

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "stack": self.stack.stack_name,
                "lifetime": "started for this drill and removed after it" if self.owned else
                "an existing stack, kept running", "elasticsearch": self.stack.settings.es_version,
                "minio": self.stack.settings.minio_version,
                # What each node was given: the figures a drill's times depend on.
                "elasticsearch_nodes": self.stack.settings.elasticsearch_nodes,
                "elasticsearch_heap_mb_per_node": self.stack.settings.es_heap_mb}

    def service_logs(self, lines: int = 200) -> dict[str, str]:
        return self.stack.log_tails(lines)

    def stop(self) -> None:
        if self.owned:
            self.stack.down(purge=True)

    def process_state(self, service: str) -> str:
        return self.stack.process_state(service)

    def signal_service(self, service: str, signum: int) -> None:
        self.stack.signal_service(service, signum)

    def data_disk(self, service: str) -> DiskUsage | None:
        return self.stack.data_disk(service)

    def restart_node(self, node: str) -> float:
        if not isinstance(self.stack, RestartsNodes):
            raise UsageError(f"the {self.name} target cannot restart one Elasticsearch node",
                             hint="drill a node restart on the local target ([stack] elasticsearch_nodes = 3)")
        return self.stack.restart_node(node)

    def _store_admin(self) -> StoreAdmin:
        ep = self._endpoints or self.stack.endpoints()
        return StoreAdmin(ep.s3_endpoint, ep.s3_access_key, ep.s3_secret_key)

    def tenant_stores(self, tenants: list[Tenant]) -> dict[Tenant, ObjectStore]:
        """A MinIO user per tenant whose policy reaches only ``<org>/<ns>/``: what the platform's
        per-tenant backup jobs would hold."""
        admin, root = self._store_admin(), self.platform().store
        stores = {}
        for tenant in tenants:
            user, secret = tenant_user(tenant), secrets.token_urlsafe(24)
            admin.grant_prefixes(user, secret, root.bucket, [tenant.repo_prefix])
            self._tenant_users[user] = secret
            stores[tenant] = root.with_credentials(user, secret)
        return stores

    def widen_tenant_access(self, tenant: Tenant, other: Tenant) -> None:
        user = tenant_user(tenant)
        secret = self._tenant_users.get(user)
        if secret is None:
            raise HarnessError(f"tenant {tenant} has no backup credentials of its own yet")
        bucket = self.platform().store.bucket
        self._store_admin().grant_prefixes(user, secret, bucket, [tenant.repo_prefix, other.repo_prefix])

    def _remove_tenant_users(self) -> None:
        admin = self._store_admin()
        for user in list(self._tenant_users):
            admin.remove_user(user)
            del self._tenant_users[user]

    def rotate_store_credentials(self) -> None:
        self.stack.rotate_minio_secret()
        self._rotated = True

    def heal(self) -> None:
        """Make the target whole and empty again between scenarios, so they stay independent."""
        self.undo_faults()
        if self._es_version not in (None, self.stack.settings.es_version):
            log.info("redeploying Elasticsearch %s", self.stack.settings.es_version)
            self.redeploy(["elasticsearch"], es_version=self.stack.settings.es_version)
        self._es_version = None
        self._remove_tenant_users()  # a fault may have widened one; each drill makes its own
        self._reset(self.platform())

    def undo_faults(self) -> None:
        """Undo what a fault left behind, keeping the data: resume paused services, restart
        stopped ones on their data, give MinIO its credentials back, put the platform user's
        password and rights back (PostgreSQL's start-up is idempotent for that) and clear the
        cluster settings faults change."""
        if self._rotated:
            log.info("restarting minio with the platform's credentials")
            self.redeploy(["minio"], wipe=False)
            self._rotated = False
        for service in ("minio", "elasticsearch", "postgres"):
            state = self.process_state(service)
            if state.startswith("stopped"):
                log.info("resuming paused %s", service)
                self.signal_service(service, signal.SIGCONT)
            elif state.startswith("not running"):
                # MinIO restarts on its data (the backups); the site's services come back empty,
                # as the reset below would leave them anyway.
                log.info("restarting %s", service)
                self.redeploy([service], wipe=service != "minio")
        self.stack.redeploy_hooks(["postgres"])
        self.platform().cluster.reset_fault_settings()

    def track_written(self, *, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None:
        self.written_keys.update(keys)
        self.written_prefixes.update(prefixes)

    def _delete_written(self, platform: Platform) -> None:
        """Remove exactly what this run wrote to the backup store, never a pre-existing key."""
        doomed = {k for k in self.written_keys if k not in self.protected}
        for prefix in self.written_prefixes:
            doomed |= {o.key for o in platform.store.list(prefix) if o.key not in self.protected}
        platform.store.delete(sorted(doomed))

    def cleanup(self) -> None:
        """At the end of a run on a stack that stays up: leave no drill backup and no tenant
        user behind, so nobody later restores drill data as the platform's newest recovery
        point or holds a key the drill made."""
        if not self.owned:
            self._remove_tenant_users()
            self._delete_written(self.platform())

    def _reset(self, platform: Platform) -> None:
        """An empty platform for the next scenario, so no scenario can pass on another's data.
        In the backup store only what this run wrote goes; pre-existing objects are never touched."""
        self._delete_written(platform)
        for name in platform.cluster.repositories():
            platform.cluster.delete_repository(name)
        platform.cluster.delete_indices("*")
        if platform.repo_root is not None:  # the local copies of repositories, too
            for local in [platform.repo_root / "backup", *platform.repo_root.glob(f"{RESTORE_COPIES_PREFIX}*")]:
                shutil.rmtree(local, ignore_errors=True)
        if platform.admin is not None:
            platform.db.recreate_database(platform.admin)


def tenant_user(tenant: Tenant) -> str:
    """A MinIO access key per tenant (MinIO wants 3-20 characters; tenant keys can be 127)."""
    return "t" + hashlib.sha256(tenant.key.encode()).hexdigest()[:16]


def platform_of(endpoints: Endpoints, *, request_timeout_s: float = 60) -> Platform:
    """The adapters of a stack drdrill started (local, containers, its own cluster): drdrill's to
    change, so no write policy; PostgreSQL's clients from the provisioned server's bindir."""
    return Platform.from_endpoints(endpoints, pg_bindir=find_pg_bindir(), request_timeout_s=request_timeout_s)
