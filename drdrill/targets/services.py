"""One small class per local service behind a common interface.

Constructors only remember their arguments; ``prepare`` creates directories and config,
``command`` says how to start, ``probe`` answers "ready?" with a state description, and
``after_ready`` creates what the platform expects (bucket, database, user).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from drdrill.adapters.s3 import probe_minio
from drdrill.errors import ServiceError
from drdrill.host.tools import tail_text
from drdrill.host.users import ServiceUser
from drdrill.provision.java import JavaRuntime, strip_unsupported_jvm_options

if TYPE_CHECKING:
    from drdrill.adapters.postgres import PgConn

BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def _chown_tree(root: Path, user: ServiceUser | None) -> None:
    if user is None:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, user.uid, user.gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), user.uid, user.gid)


def probe_elasticsearch(url: str) -> tuple[bool, str]:
    from drdrill.adapters.elasticsearch import SearchCluster  # the client is heavy: import on use

    cluster = SearchCluster(url, request_timeout_s=2)
    try:
        return cluster.probe(2)
    finally:
        cluster.close()


def probe_postgres(conn: PgConn) -> tuple[bool, str]:
    from drdrill.adapters.postgres import MetadataDb

    return MetadataDb(conn).probe()


def probe_es_cluster(url: str, nodes: int) -> tuple[bool, str]:
    """A cluster is ready when it answers with a health that serves and all ``nodes`` joined:
    a node that answers before the others joined would let a drill start on a smaller cluster."""
    from drdrill.adapters.elasticsearch import SearchCluster  # the client is heavy: import on use

    if nodes <= 1:
        return probe_elasticsearch(url)
    cluster = SearchCluster(url, request_timeout_s=2)
    try:
        ready, state = cluster.probe(2)
        if not ready:
            return ready, state
        joined = int(cluster.client.options(request_timeout=2, max_retries=0).cluster.health()["number_of_nodes"])
        return joined >= nodes, f"{state}, {joined} of {nodes} nodes joined"
    finally:
        cluster.close()


def platform_es_settings(cluster_name: str, repo_root: Path, *, node_name: str = "drdrill-es",
                         seed_hosts: list[str] | None = None, master_nodes: list[str] | None = None
                         ) -> dict[str, str]:
    """The node settings every target's Elasticsearch runs with (local process or container).
    One node forms a cluster of its own; several find each other at ``seed_hosts`` (their
    transport addresses) and bootstrap the first election among ``master_nodes``."""
    discovery = {"discovery.type": "single-node"} if not seed_hosts else {
        "discovery.seed_hosts": ",".join(seed_hosts),
        "cluster.initial_master_nodes": ",".join(master_nodes or []),
    }
    return {
        "cluster.name": cluster_name,
        "node.name": node_name,
        **discovery,
        "xpack.security.enabled": "false",
        "path.repo": str(repo_root),
        # Drills run on developer machines with full-ish disks; the disk-full fault is
        # injected on purpose, not by the watermark of whatever disk this happens to be.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        # A 1,000-tenant drill holds 3,000 shards (two data indices and a canary index per
        # tenant), past the default 1,000 per node; production sizes its cluster for its tenants.
        "cluster.max_shards_per_node": "4000",
    }


def elasticsearch_version(url: str) -> str:
    """The version a ready node reports (recorded as evidence)."""
    from drdrill.adapters.elasticsearch import SearchCluster  # the client is heavy: import on use

    cluster = SearchCluster(url, request_timeout_s=10)
    try:
        return cluster.version()
    finally:
        cluster.close()


def ensure_bucket(url: str, access_key: str, secret_key: str, bucket: str) -> None:
    """The bucket the platform's backups go to, on a ready MinIO (idempotent)."""
    from drdrill.adapters.s3 import ObjectStore  # boto3 is heavy: import on use

    ObjectStore(url, access_key, secret_key, bucket).ensure_bucket()


def ensure_platform_database(admin: PgConn, database: str, db_user: str, db_password: str,
                             bindir: Path | None) -> dict[str, str]:
    """Idempotent, so a restart (not only a first start) also puts the platform's role,
    password, login right and database back as the runbook expects them."""
    from drdrill.adapters.postgres import MetadataDb, PgConn

    platform_db = MetadataDb(PgConn(admin.host, admin.port, database, db_user, db_password), bindir=bindir)
    platform_db.set_password(admin, db_user, db_password)
    if database not in platform_db.databases(admin):
        platform_db.create_database(admin, database)
    return {"postgres": MetadataDb(admin).server_version()}


class LocalService(ABC):
    name: ClassVar[str]
    stop_signal: ClassVar[int] = signal.SIGTERM

    def __init__(self, workdir: Path, port: int, user: ServiceUser | None) -> None:
        self.root = workdir / self.name
        self.port = port
        self.user = user

    @property
    def node(self) -> str:
        """Which of the service's processes this is ('' when the service has one)."""
        return ""

    @property
    def log_path(self) -> Path:
        return self.root / "console.log"

    def log_tail(self, lines: int = 20) -> str:
        return tail_text(self.log_path, lines)

    def prepare(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        os.chmod(self.root, 0o700)

    @abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]: ...

    @abstractmethod
    def probe(self) -> tuple[bool, str]: ...

    def after_ready(self) -> dict[str, str]:
        """Create what the platform expects; returns facts to record (e.g. the version)."""
        return {}


class ElasticsearchService(LocalService):
    """One Elasticsearch node. Alone (``transport_ports`` of one) it keeps the single-node layout,
    ``<workdir>/elasticsearch``; node ``index`` of several lives in ``elasticsearch/node-<index>``
    and all share ``elasticsearch/repo`` (the fs repository must be one directory every node sees)."""

    name = "elasticsearch"

    def __init__(
        self, workdir: Path, port: int, user: ServiceUser | None, *, home: Path, java: JavaRuntime,
        transport_port: int, heap_mb: int, cluster_name: str, index: int = 0,
        transport_ports: list[int] | None = None,
    ) -> None:
        super().__init__(workdir, port, user)
        self.home, self.java = home, java
        self.transport_port, self.heap_mb, self.cluster_name = transport_port, heap_mb, cluster_name
        self.index = index
        self.transport_ports = transport_ports or [transport_port]
        self.service_root = workdir / self.name
        if self.nodes > 1:
            self.root = self.service_root / f"node-{index}"

    @property
    def nodes(self) -> int:
        return len(self.transport_ports)

    @property
    def node(self) -> str:
        return self.node_name(self.index) if self.nodes > 1 else ""

    @staticmethod
    def node_name(index: int) -> str:
        return f"drdrill-es-{index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def repo_root(self) -> Path:
        return self.service_root / "repo"

    def prepare(self) -> None:
        if self.nodes > 1:
            self.service_root.mkdir(mode=0o711, exist_ok=True)
            if not self.repo_root.exists():
                self.repo_root.mkdir()
                _chown_tree(self.repo_root, self.user)
            shutil.rmtree(self.root, ignore_errors=True)
            self.root.mkdir()
            os.chmod(self.root, 0o700)
            self._prepare_node()
            return
        super().prepare()
        self._prepare_node()

    def _prepare_node(self) -> None:
        # Elasticsearch writes its keystore into the config directory on start, so each stack
        # gets its own copy rather than sharing the cached distribution's.
        shutil.copytree(self.home / "config", self.root / "config")
        strip_unsupported_jvm_options(self.root / "config", self.java)
        for sub in ("data", "logs", "repo", "tmp") if self.nodes == 1 else ("data", "logs", "tmp"):
            (self.root / sub).mkdir()
        _chown_tree(self.root, self.user)

    def command(self) -> tuple[list[str], dict[str, str]]:
        names = [self.node_name(i) for i in range(self.nodes)]
        alone = self.nodes == 1
        settings = {
            **platform_es_settings(
                self.cluster_name, self.repo_root, node_name="drdrill-es" if alone else names[self.index],
                seed_hosts=None if alone else [f"127.0.0.1:{port}" for port in self.transport_ports],
                master_nodes=None if alone else names),
            "http.host": "127.0.0.1",
            "transport.host": "127.0.0.1",
            "http.port": str(self.port),
            "transport.port": str(self.transport_port),
            "path.data": str(self.root / "data"),
            "path.logs": str(self.root / "logs"),
        }
        argv = [str(self.home / "bin" / "elasticsearch")] + [f"-E{k}={v}" for k, v in settings.items()]
        env = dict(
            BASE_ENV,
            ES_JAVA_HOME=str(self.java.home),
            ES_PATH_CONF=str(self.root / "config"),
            ES_TMPDIR=str(self.root / "tmp"),
            ES_JAVA_OPTS=f"-Xms{self.heap_mb}m -Xmx{self.heap_mb}m",
        )
        return argv, env

    def probe(self) -> tuple[bool, str]:
        return probe_es_cluster(self.url, self.nodes)

    def after_ready(self) -> dict[str, str]:
        return {"elasticsearch": elasticsearch_version(self.url)}


class MinioService(LocalService):
    name = "minio"

    def __init__(
        self, workdir: Path, port: int, user: ServiceUser | None, *, binary: Path, version: str,
        access_key: str, secret_key: str, bucket: str,
    ) -> None:
        super().__init__(workdir, port, user)
        self.binary, self.version = binary, version
        self.access_key, self.secret_key, self.bucket = access_key, secret_key, bucket

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        super().prepare()
        (self.root / "data").mkdir()
        (self.root / "home").mkdir()
        _chown_tree(self.root, self.user)

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = [str(self.binary), "server", "--quiet", "--address", f"127.0.0.1:{self.port}", str(self.root / "data")]
        # Credentials go through the environment, never argv (visible in ps to every user).
        env = dict(
            BASE_ENV,
            HOME=str(self.root / "home"),
            MINIO_ROOT_USER=self.access_key,
            MINIO_ROOT_PASSWORD=self.secret_key,
            MINIO_BROWSER="off",
            MINIO_UPDATE="off",
        )
        return argv, env

    def probe(self) -> tuple[bool, str]:
        return probe_minio(self.url)

    def after_ready(self) -> dict[str, str]:
        ensure_bucket(self.url, self.access_key, self.secret_key, self.bucket)
        return {"minio": self.version}


class PostgresService(LocalService):
    name = "postgres"
    # SIGINT is PostgreSQL's "fast shutdown": roll back sessions and stop cleanly.
    stop_signal = signal.SIGINT

    def __init__(
        self, workdir: Path, port: int, user: ServiceUser | None, *, bindir: Path,
        admin_user: str, admin_password: str, database: str, db_user: str, db_password: str,
    ) -> None:
        super().__init__(workdir, port, user)
        self.bindir = bindir
        self.admin_user, self.admin_password = admin_user, admin_password
        self.database, self.db_user, self.db_password = database, db_user, db_password

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def admin(self) -> PgConn:
        from drdrill.adapters.postgres import PgConn

        return PgConn("127.0.0.1", self.port, "postgres", self.admin_user, self.admin_password)

    def prepare(self) -> None:
        super().prepare()
        (self.root / "sock").mkdir()
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.admin_password + "\n")
        os.chmod(pwfile, 0o600)
        _chown_tree(self.root, self.user)
        try:
            result = subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", self.admin_user,
                 f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(BASE_ENV), cwd=self.root, check=False, timeout=120,
                user=self.user.uid if self.user else None, group=self.user.gid if self.user else None,
                extra_groups=[] if self.user else None,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (self.root / "initdb.log").write_bytes(result.stdout)
        if result.returncode != 0:
            last = result.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise ServiceError(f"initdb failed (exit {result.returncode}): {last[0]}",
                               hint=f"see {self.root / 'initdb.log'}")

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root / 'sock'}",
            "-c", "log_statement=none",
        ]
        return argv, dict(BASE_ENV)

    def probe(self) -> tuple[bool, str]:
        return probe_postgres(self.admin)

    def after_ready(self) -> dict[str, str]:
        return ensure_platform_database(self.admin, self.database, self.db_user, self.db_password, self.bindir)
