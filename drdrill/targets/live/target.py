"""The live target: an environment drdrill did not start (staging), drilled in place and left
as it was found.

Safety is the target's, not the features': every client it hands out asks its write policy
(:class:`~drdrill.core.ownership.OwnedOnly`) before each request that would change something,
so a step of any library can only create objects named and marked as this run's, and change or
remove only those. PostgreSQL sessions to any other database are read only besides.

One run at a time: :meth:`LiveTarget.start` takes the environment's lock (a PostgreSQL advisory
lock, released by the server when the holder dies), removes what earlier, killed runs left
(marked as drdrill's), then fingerprints the environment; :meth:`LiveTarget.cleanup` removes
what this run created, also after a failure or Ctrl-C, and :meth:`LiveTarget.altered_protected`
compares. Nothing here can destroy or redeploy a service: destructive drills need Kubernetes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.adapters.kubernetes import DRILL_NAMESPACE_LABEL
from drdrill.adapters.pg_owned import EnvironmentLock, mark_database
from drdrill.adapters.platform import Platform
from drdrill.adapters.postgres import MetadataDb, PgConn
from drdrill.adapters.s3 import ObjectStore
from drdrill.core.backup_job import BackupJobHealth
from drdrill.core.layout import Tenant
from drdrill.core.ownership import RESTORE_COPIES_PREFIX, Mark, OwnedOnly, Write, name_prefix
from drdrill.errors import ConfigError, HarnessError, UsageError
from drdrill.settings.live import LiveSecrets, LiveTargetSettings, SecretRef, ServiceRef, service_host, service_url
from drdrill.targets.base import DiskUsage
from drdrill.targets.live.state import Fingerprint, Leftovers, clear_leftovers, fingerprint, mark_directory

if TYPE_CHECKING:
    from drdrill.adapters.kubernetes import KubeCluster

log = logging.getLogger(__name__)

NOT_HERE = ("destroying and redeploying services on --target live needs Kubernetes in [target] (kubeconfig, "
            "namespace, kustomization), and then runs on it")


def _parse_dsn(dsn: str, ref: SecretRef) -> PgConn:
    try:
        return PgConn.from_dsn(dsn)
    except ValueError as exc:
        raise ConfigError(f"[target] {ref.key}", f"{ref.describe()}: {exc}") from None


def drill_prefix(drill_id: str) -> str:
    """What every index and repository a drill creates on a live cluster is named with."""
    return name_prefix(drill_id)


@dataclass
class Created:
    """What a drill created on a live environment, recorded as soon as it exists."""

    indices: set[str] = field(default_factory=set)
    repositories: set[str] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    directories: set[Path] = field(default_factory=set)
    wiped: set[str] = field(default_factory=set)  # scratch databases given by the user: emptied again


class LiveTarget:
    """An existing environment, reached through the ``[target]`` table's endpoints. The
    constructor does no I/O; :meth:`start` reads the secrets and connects."""

    name = "live"

    def __init__(self, settings: LiveTargetSettings, *, drill_id: str, pg_bindir: Path | None = None) -> None:
        self.settings, self.drill_id, self.pg_bindir = settings, drill_id, pg_bindir
        self.prefix = drill_prefix(drill_id)
        self.created = Created()
        self.protected: dict[str, str] = {}
        self._secrets: LiveSecrets | None = None
        self._before: Fingerprint | None = None
        self._kube: KubeCluster | None = None
        self._forwards = contextlib.ExitStack()
        self._ports: dict[ServiceRef, int] = {}
        self.cluster_facts: dict[str, Any] = {}
        self.backup_job: BackupJobHealth | None = None
        # Every client this target hands out asks this policy before each write.
        self.policy = OwnedOnly(settings.environment, drill_id)
        self.mark = Mark(drill_id, datetime.now(UTC).isoformat(timespec="seconds"))
        self.lock: EnvironmentLock | None = None
        self.leftovers = Leftovers()

    # --- connecting ----------------------------------------------------------------------

    @property
    def secrets(self) -> LiveSecrets:
        if self._secrets is None:
            self._secrets = LiveSecrets.read(self.settings)
        return self._secrets

    @property
    def dump_password(self) -> bytes:
        return self.secrets.dump_password

    def _pg_conn(self, dsn: str, ref: SecretRef) -> PgConn:
        """The DSN's connection; on Kubernetes, the platform's server (the host its own DSN
        names) is reached through the postgres Service's port-forward. Any other host is used
        as it is: a scratch server elsewhere must never become the platform's."""
        conn = _parse_dsn(dsn, ref)
        if self.settings.kubernetes is not None and self.settings.kubernetes.in_cluster:
            return dataclasses.replace(conn, host=service_host(conn.host, os.environ))
        if self.settings.kubernetes is None:
            return conn
        platform_host = _parse_dsn(self.secrets.postgres_dsn, self.settings.postgres_dsn).host
        if conn.host != platform_host:
            return conn
        return dataclasses.replace(conn, host="127.0.0.1", port=self._forwarded(self.settings.kubernetes.postgres))

    def _forwarded(self, service: ServiceRef) -> int:
        """The local port forwarded to ``service`` (opened on first use, closed by :meth:`stop`)."""
        if service not in self._ports:
            kube = self.kube()
            assert self.settings.kubernetes is not None
            namespace = self.settings.kubernetes.namespace
            self._ports[service] = self._forwards.enter_context(kube.port_forward(
                namespace, kube.service_selector(namespace, service.name), service.port, f"Service {service.name}"))
        return self._ports[service]

    def kube(self) -> KubeCluster:
        ref = self.settings.kubernetes
        if ref is None:
            raise HarnessError("this live target names no Kubernetes cluster",
                               hint="give kubeconfig and namespace in [target]")
        if self._kube is None:
            from drdrill.adapters.kubernetes import KubeCluster

            self._kube = KubeCluster(ref.kubeconfig, ref.context)
        return self._kube

    def endpoint_urls(self) -> tuple[str, str]:
        """Elasticsearch's URL and the S3 endpoint, as drdrill reaches them."""
        s = self.settings
        if s.kubernetes is not None and s.kubernetes.in_cluster:
            return service_url(s.elasticsearch_url, os.environ), service_url(s.s3_endpoint, os.environ)
        if s.kubernetes is None:
            return s.elasticsearch_url, s.s3_endpoint
        return (f"http://127.0.0.1:{self._forwarded(s.kubernetes.elasticsearch)}",
                f"http://127.0.0.1:{self._forwarded(s.kubernetes.minio)}")

    def platform(self, *, request_timeout_s: float = 60) -> Platform:
        s, secret = self.settings, self.secrets
        basic = (s.elasticsearch_username, secret.elasticsearch_password) \
            if s.elasticsearch_username and secret.elasticsearch_password else None
        conn = self._pg_conn(secret.postgres_dsn, s.postgres_dsn)
        es_url, s3_endpoint = self.endpoint_urls()
        return Platform(
            cluster=SearchCluster(es_url, request_timeout_s=request_timeout_s,
                                  api_key=secret.elasticsearch_api_key, basic_auth=basic,
                                  ca_file=str(s.elasticsearch_ca_file) if s.elasticsearch_ca_file else None,
                                  guard=self.policy),
            store=ObjectStore(s3_endpoint, secret.s3_access_key, secret.s3_secret_key, s.s3_bucket,
                              read_timeout_s=request_timeout_s, guard=self.policy),
            db=MetadataDb(conn, bindir=self.pg_bindir, timeout_s=request_timeout_s, guard=self.policy),
            # The DSN's role creates the scratch database; no other admin is asked for.
            admin=conn,
            repo_root=s.fs_repository_dir if s.repository == "fs" else None,
        )

    def _scratch_conn(self) -> PgConn | None:
        """The scratch database the settings name (None: drdrill creates one). Never the
        platform's own: the same server and database name is a usage error."""
        dsn, ref = self.secrets.postgres_scratch_dsn, self.settings.postgres_scratch_dsn
        if dsn is None or ref is None:
            return None
        scratch = self._pg_conn(dsn, ref)
        own = self._pg_conn(self.secrets.postgres_dsn, self.settings.postgres_dsn)
        if (scratch.host, scratch.port, scratch.database) == (own.host, own.port, own.database):
            raise UsageError(f"[target] {ref.key}: the scratch database is the platform's own ({own!r})",
                             hint="name a database the drill may wipe, or leave postgres_scratch_dsn out: drdrill "
                                  "then creates (and removes) one of its own")
        return scratch

    def scratch_db(self, platform: Platform, name: str) -> MetadataDb:
        """Where the dump is restored: the user's scratch database (emptied, never dropped), or
        a new one of drdrill's (created, marked with this run, dropped afterwards)."""
        given = self._scratch_conn()
        if given is not None:
            self.policy.granted_databases = frozenset({given.database})
            scratch = MetadataDb(given, bindir=self.pg_bindir, timeout_s=platform.db.timeout_s, guard=self.policy)
            assert self.secrets.postgres_scratch_dsn is not None
            self.created.wiped.add(self.secrets.postgres_scratch_dsn)
            scratch.wipe()
            return scratch
        self.created.databases.add(name)
        created = platform.db.create_database(platform.db.conn, name)
        mark_database(created, self.mark.text())
        return created

    def start(self) -> None:
        """Check the settings, take the environment's lock, clear what killed runs left, and
        fingerprint what is there. Nothing of the environment is changed but drdrill's own
        marked leftovers."""
        self._scratch_conn()  # a scratch database that is the platform's: refused before anything
        if self.settings.kubernetes is not None:
            self._read_cluster()
        platform = self.platform(request_timeout_s=30)
        try:
            platform.cluster.compatibility()  # an unsupported server is a usage error, before anything else
            self.lock = EnvironmentLock(platform.db.conn, f"drdrill {self.drill_id}")
            self.lock.acquire()
            self.leftovers = clear_leftovers(platform, self.policy, platform.repo_root)
            self._before = fingerprint(platform)
        except BaseException:
            self._release()
            raise
        finally:
            platform.close()
        self.protected = dict(self._before.objects)

    def clear_earlier_runs(self) -> Leftovers:
        """`drdrill target cleanup`: under the environment's lock, remove what killed runs of
        drdrill left (marked as theirs), as a restore test does when it starts."""
        platform = self.platform(request_timeout_s=30)
        try:
            platform.cluster.compatibility()
            self.lock = EnvironmentLock(platform.db.conn, f"drdrill {self.drill_id} (cleanup)")
            self.lock.acquire()
            self.leftovers = clear_leftovers(platform, self.policy, platform.repo_root)
            return self.leftovers
        finally:
            platform.close()
            self.stop()

    def _release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def _read_cluster(self) -> None:
        """What the report records of the cluster (version, nodes, the platform's images) and
        the backup CronJob's health."""
        ref = self.settings.kubernetes
        assert ref is not None
        kube = self.kube()
        if ref.in_cluster:
            # The restore test's ServiceAccount reads CronJobs, Jobs and pods of its namespace
            # only (deploy/k8s/restore-test): no nodes, workloads or namespace labels.
            self.cluster_facts = {"version": kube.version(), "api": "in-cluster ServiceAccount"}
        else:
            self.cluster_facts = {**kube.facts(ref.namespace), "drill_environment_label": kube.namespace_labels(
                ref.namespace).get(DRILL_NAMESPACE_LABEL) == "true"}
        self.backup_job = kube.cronjob_health(ref.namespace, ref.backup_cronjob)

    def describe(self) -> dict[str, Any]:
        """For the report: the endpoints and where the secrets come from (never their values)."""
        out = self.settings.describe()
        if self.cluster_facts:
            out["cluster"] = self.cluster_facts
        if self.backup_job is not None:
            out["backup_cronjob"] = self.backup_job.to_dict()
        if self.leftovers:
            out["leftovers_of_earlier_runs"] = self.leftovers.to_dict()
        return out

    # --- what a drill creates, and removing it --------------------------------------------

    def track_created(self, *, indices: Sequence[str] = (), repositories: Sequence[str] = (),
                      directories: Sequence[Path] = ()) -> None:
        for name in [*indices, *repositories]:
            if not name.startswith(self.prefix):
                raise HarnessError(f"{name} is not named as this drill's ({self.prefix}*): refusing to own it")
        root = self.settings.fs_repository_dir
        for directory in directories:
            if root is None or directory.parent != root:
                raise HarnessError(f"{directory} is not under fs_repository_dir: refusing to own it")
            self.policy.check(Write("filesystem", "directory", directory.name, "create"))
            if directory not in self.created.directories:
                directory.mkdir(exist_ok=True)
                stat = root.stat()  # Elasticsearch's user reads what drdrill copies there
                os.chown(directory, stat.st_uid, stat.st_gid)
                mark_directory(directory, self.mark)
        self.created.indices.update(indices)
        self.created.repositories.update(repositories)
        self.created.directories.update(directories)

    def cleanup(self) -> None:
        """Remove exactly what this drill created; every removal is tried, failures named."""
        if not any(vars(self.created).values()):
            return
        platform = self.platform(request_timeout_s=60)
        failures: list[str] = []

        def attempt(what: str, action: Any, *args: Any) -> None:
            try:
                action(*args)
            except Exception as exc:  # one leftover must not keep the others in place
                failures.append(f"{what}: {exc}")

        for index in sorted(self.created.indices):
            attempt(f"index {index}", platform.cluster.delete_indices, index)
        for repository in sorted(self.created.repositories):
            attempt(f"repository {repository}", platform.cluster.delete_repository, repository)
        for database in sorted(self.created.databases):
            attempt(f"database {database}", platform.db.drop_database, platform.db.conn, database)
        for dsn in self.created.wiped:
            assert self.settings.postgres_scratch_dsn is not None
            attempt("scratch database", MetadataDb(self._pg_conn(dsn, self.settings.postgres_scratch_dsn),
                                                   bindir=self.pg_bindir, guard=self.policy).wipe)
        root = self.settings.fs_repository_dir
        for directory in sorted(self.created.directories):
            if root is not None and directory.parent == root and directory.name.startswith(RESTORE_COPIES_PREFIX):
                attempt(f"directory {directory}", shutil.rmtree, directory)
        platform.close()
        self.created = Created()
        if failures:
            raise HarnessError(f"could not remove everything the drill created: {'; '.join(failures[:3])}",
                               hint="remove it by hand: every name starts with " + self.prefix)

    def altered_protected(self) -> list[str]:
        """What differs from the environment as the drill found it (after cleanup: nothing)."""
        if self._before is None:
            return []
        platform = self.platform(request_timeout_s=30)
        try:
            return self._before.differences(fingerprint(platform))
        finally:
            platform.close()

    def heal(self) -> None:
        """Between scenarios: take away what the previous one created."""
        self.cleanup()

    def undo_faults(self) -> None:
        """No fault is injected on a live environment."""

    def tenant_stores(self, tenants: list[Tenant]) -> dict[Tenant, ObjectStore]:
        """The tenants' own backup credentials that [target] names (its operators make the
        users; drdrill only uses them, to read)."""
        keys = self.secrets.tenant_keys
        store = self.platform().store
        return {t: store.with_credentials(*keys[t.key]) for t in tenants if t.key in keys}

    def widen_tenant_access(self, tenant: Tenant, other: Tenant) -> None:
        raise HarnessError("fault injection is not available on --target live")

    def track_written(self, *, keys: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None:
        raise HarnessError("a drill never writes into a live environment's backup store")

    # --- what cannot be done here ----------------------------------------------------------

    def destroy(self, services: list[str]) -> list[str]:
        raise HarnessError(f"site loss is not available on this target: {NOT_HERE}",
                           hint="run the restore test (features/restore_test.feature), or drill --target local")

    def redeploy(self, services: list[str], *, es_version: str | None = None) -> None:
        raise HarnessError(f"redeploy not available on this target: {NOT_HERE}")

    def process_state(self, service: str) -> str:
        return "n/a"  # a remote service's process is not drdrill's to see

    def data_disk(self, service: str) -> DiskUsage | None:
        return None  # nor its disk

    def signal_service(self, service: str, signum: int) -> None:
        raise HarnessError("fault injection is not available on --target live")

    def rotate_store_credentials(self) -> None:
        raise HarnessError("fault injection is not available on --target live")

    def stop(self) -> None:
        """Let go of the environment's lock and close the port-forwards; nothing else to stop:
        drdrill did not start this environment."""
        self._release()
        self._forwards.close()
        self._ports.clear()
        if self._kube is not None:
            self._kube.close()
            self._kube = None

    def service_logs(self) -> dict[str, str]:
        return {}  # a live environment's logs are its operators' (Kubernetes: later)
