"""The live target: an environment drdrill did not start (staging), drilled in place and left
as it was found.

Everything the drill creates there is recorded as it is created and removed afterwards, also
after a failure or Ctrl-C (:meth:`LiveTarget.cleanup`): restored copies of indices, read-only
repository registrations, the scratch database and fetched repository copies. What the
environment held before (indices, aliases, repositories, databases, rows, bucket objects) is
fingerprinted at the start and compared at the end (:meth:`LiveTarget.altered_protected`).
Nothing here can destroy or redeploy a service: destructive drills need Kubernetes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.adapters.kubernetes import DRILL_NAMESPACE_LABEL
from drdrill.adapters.platform import Platform
from drdrill.adapters.postgres import MetadataDb, PgConn
from drdrill.adapters.s3 import ObjectStore
from drdrill.core.backup_job import BackupJobHealth
from drdrill.core.layout import Tenant
from drdrill.drill.restore import RESTORE_COPIES_PREFIX
from drdrill.errors import ConfigError, HarnessError
from drdrill.targets.base import DiskUsage
from drdrill.targets.live_settings import LiveSecrets, LiveTargetSettings, SecretRef, ServiceRef

if TYPE_CHECKING:
    from drdrill.adapters.kubernetes import KubeCluster

log = logging.getLogger(__name__)

NOT_HERE = ("destroying and redeploying services on --target live needs Kubernetes in [target] (kubeconfig, "
            "namespace, kustomization), and then runs on it")


def drill_prefix(drill_id: str) -> str:
    """What every index and repository a drill creates on a live cluster is named with."""
    return f"drdrill-{drill_id.lower()}-"


@dataclass
class Created:
    """What a drill created on a live environment, recorded as soon as it exists."""

    indices: set[str] = field(default_factory=set)
    repositories: set[str] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    directories: set[Path] = field(default_factory=set)
    wiped: set[str] = field(default_factory=set)  # scratch databases given by the user: emptied again


@dataclass
class Fingerprint:
    """What "unchanged" means for a live environment."""

    indices: dict[str, list[Any]]  # name -> [uuid, documents]; hidden (.) indices aside
    aliases: dict[str, list[str]]
    repositories: dict[str, str]  # name -> type and settings, as JSON
    databases: list[str]
    rows: dict[str, int]  # table -> rows in the platform's database
    objects: dict[str, str]  # bucket key -> ETag

    def differences(self, after: Fingerprint) -> list[str]:
        out: list[str] = []
        for what in ("indices", "aliases", "repositories", "rows", "objects"):
            before_map, after_map = getattr(self, what), getattr(after, what)
            gone = sorted(set(before_map) - set(after_map))
            changed = sorted(k for k in set(before_map) & set(after_map) if before_map[k] != after_map[k])
            new = sorted(set(after_map) - set(before_map)) if what != "objects" else []  # the job may add backups
            out += [f"{what}: {k} is gone" for k in gone] + [f"{what}: {k} changed" for k in changed]
            out += [f"{what}: {k} appeared" for k in new]
        out += [f"databases: {d} is gone" for d in sorted(set(self.databases) - set(after.databases))]
        out += [f"databases: {d} appeared" for d in sorted(set(after.databases) - set(self.databases))]
        return out


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
        """The DSN's connection; on Kubernetes its host and port are the postgres Service's
        port-forward."""
        try:
            conn = PgConn.from_dsn(dsn)
        except ValueError as exc:
            raise ConfigError(f"[target] {ref.key}", f"{ref.describe()}: {exc}") from None
        if self.settings.kubernetes is None:
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
                                  ca_file=str(s.elasticsearch_ca_file) if s.elasticsearch_ca_file else None),
            store=ObjectStore(s3_endpoint, secret.s3_access_key, secret.s3_secret_key, s.s3_bucket,
                              read_timeout_s=request_timeout_s),
            db=MetadataDb(conn, bindir=self.pg_bindir, timeout_s=request_timeout_s),
            # The DSN's role creates the scratch database; no other admin is asked for.
            admin=conn,
            repo_root=s.fs_repository_dir if s.repository == "fs" else None,
        )

    def scratch_db(self, platform: Platform, name: str) -> MetadataDb:
        """Where the dump is restored: the user's scratch database (emptied), or a new one."""
        dsn = self.secrets.postgres_scratch_dsn
        if dsn is not None:
            assert self.settings.postgres_scratch_dsn is not None
            scratch = MetadataDb(self._pg_conn(dsn, self.settings.postgres_scratch_dsn), bindir=self.pg_bindir,
                                 timeout_s=platform.db.timeout_s)
            self.created.wiped.add(dsn)
            scratch.wipe()
            return scratch
        self.created.databases.add(name)
        return platform.db.create_database(platform.db.conn, name)

    def start(self) -> None:
        if self.settings.kubernetes is not None:
            self._read_cluster()
        platform = self.platform(request_timeout_s=30)
        try:
            platform.cluster.compatibility()  # an unsupported server is a usage error, before anything else
            self._before = fingerprint(platform)
        finally:
            platform.close()
        self.protected = dict(self._before.objects)

    def _read_cluster(self) -> None:
        """What the report records of the cluster (version, nodes, the platform's images) and
        the backup CronJob's health."""
        ref = self.settings.kubernetes
        assert ref is not None
        kube = self.kube()
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
        return out

    # --- what a drill creates, and removing it --------------------------------------------

    def track_created(self, *, indices: Sequence[str] = (), repositories: Sequence[str] = (),
                      directories: Sequence[Path] = ()) -> None:
        for name in [*indices, *repositories]:
            if not name.startswith(self.prefix):
                raise HarnessError(f"{name} is not named as this drill's ({self.prefix}*): refusing to own it")
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
                                                   bindir=self.pg_bindir).wipe)
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
        """Close the port-forwards; nothing else to stop: drdrill did not start this environment."""
        self._forwards.close()
        self._ports.clear()
        if self._kube is not None:
            self._kube.close()
            self._kube = None

    def service_logs(self) -> dict[str, str]:
        return {}  # a live environment's logs are its operators' (Kubernetes: later)


def fingerprint(platform: Platform) -> Fingerprint:
    cluster, db = platform.cluster, platform.db
    docs = cluster.indices("*")
    uuids = cluster.index_uuids(sorted(docs))
    return Fingerprint(
        indices={name: [uuids.get(name), state.docs] for name, state in docs.items() if not name.startswith(".")},
        aliases={alias: idx for alias, idx in cluster.aliases().items() if not alias.startswith(".")},
        repositories={name: json.dumps(body, sort_keys=True) for name, body in cluster.repositories().items()},
        databases=db.databases(),
        rows=db.table_counts(),
        objects={o.key: o.etag for o in platform.store.list("")},
    )


@dataclass(frozen=True)
class Capability:
    """One thing `drdrill target check` asked an endpoint, and its answer."""

    endpoint: str
    check: str
    ok: bool
    detail: str


def check_target(target: LiveTarget) -> list[Capability]:
    """Connect to each endpoint and ask what a restore test needs: versions, reading the
    bucket, reading snapshots, reading es_metadata and creating a scratch database."""
    settings = target.settings
    platform = target.platform(request_timeout_s=10)
    out: list[Capability] = []

    def ask(endpoint: str, check: str, action: Any) -> Any:
        try:
            value = action()
        except Exception as exc:  # the answer is the point: any failure is reported, not raised
            text = exc.one_line() if hasattr(exc, "one_line") else f"{type(exc).__name__}: {exc}"
            out.append(Capability(endpoint, check, False, text))
            return None
        detail = value if isinstance(value, str) else "ok"
        out.append(Capability(endpoint, check, True, detail))
        return value

    es_url, s3_endpoint = target.endpoint_urls()
    via = f" (port-forward to {settings.kubernetes.namespace})" if settings.kubernetes else ""
    es = f"elasticsearch {es_url}{via}"
    ask(es, "version", lambda: ", ".join(f"{k} {v}" for k, v in platform.cluster.compatibility().items()))
    ask(es, "list snapshot repositories", lambda: f"{len(platform.cluster.repositories())} registered")
    s3 = f"s3 {s3_endpoint}{via} bucket {settings.s3_bucket}"
    ask(s3, "list the bucket", lambda: f"{sum(1 for _ in platform.store.list(''))} objects")
    from drdrill.backups import catalog
    ask(s3, "find tenant repositories", lambda: f"{len(catalog.discover_tenants(platform.store))} tenant paths")
    from drdrill.core.layout import DRILL_MARKER_KEY
    ask(s3, "drill-environment marker", lambda: "present" if platform.store.exists(DRILL_MARKER_KEY) else
        "absent (destructive drills refused)")
    pg = f"postgres {platform.db.conn!r}"
    ask(pg, "version", platform.db.server_version)
    ask(pg, "read tenant_containers", lambda: f"{platform.db.table_count()} rows")
    if settings.postgres_scratch_dsn is not None:
        ask(pg, "scratch database", lambda: MetadataDb(PgConn.from_dsn(target.secrets.postgres_scratch_dsn or ""),
                                                       bindir=target.pg_bindir).server_version() and "reachable")
    else:
        ask(pg, "may create a scratch database", lambda: _may_create_database(platform.db))
    if settings.repository == "fs":
        root = settings.fs_repository_dir
        ask(f"fs {root}", "writable repository directory", lambda: _writable(root))
    platform.close()
    return out


def _may_create_database(db: MetadataDb) -> str:
    if not db.may_create_database():
        raise HarnessError(f"role {db.conn.user} may not create databases",
                           hint="grant CREATEDB, or give postgres_scratch_dsn_env")
    return "yes (CREATEDB)"


def _writable(root: Path | None) -> str:
    if root is None or not root.is_dir():
        raise HarnessError(f"{root} is not a directory here", hint="mount the nodes' path.repo at this path")
    if not os.access(root, os.W_OK):
        raise HarnessError(f"{root} is not writable by drdrill")
    return "ok"
