"""The platform under drill: where its services are (:class:`Endpoints`, what every target hands
to backups, restores and verification), and the adapters bound to them (:class:`Platform`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.adapters.postgres import MetadataDb, PgConn
from drdrill.adapters.s3 import ObjectStore


@dataclass(frozen=True)
class Endpoints:
    elasticsearch_url: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str = field(repr=False)
    bucket: str
    pg_host: str
    pg_port: int
    pg_database: str
    pg_user: str
    pg_password: str = field(repr=False)
    pg_admin_user: str
    pg_admin_password: str = field(repr=False)
    # Local target only: the directory Elasticsearch's ``path.repo`` points at. Snapshots are
    # written there and copied to/from MinIO, which stays the store of record.
    es_repo_root: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)
    # Every Elasticsearch node's HTTP address when the cluster has several (the first is
    # ``elasticsearch_url``): the client fails over to the others when its node is lost, as a
    # platform's clients do behind a load balancer. Empty: ``elasticsearch_url`` alone.
    elasticsearch_nodes: list[str] = field(default_factory=list)

    @property
    def pg_dsn(self) -> str:
        return self._dsn(self.pg_user, self.pg_password, self.pg_database)

    def pg_admin_dsn(self, database: str = "postgres") -> str:
        return self._dsn(self.pg_admin_user, self.pg_admin_password, database)

    def _dsn(self, user: str, password: str, database: str) -> str:
        return f"postgresql://{quote(user)}:{quote(password, safe='')}@{self.pg_host}:{self.pg_port}/{database}"

    def contract_json(self) -> dict[str, object]:
        """The shape ``drdrill stack up --json`` promises (DESIGN.md), credentials included."""
        return {
            "elasticsearch": {"url": self.elasticsearch_url, "version": self.versions.get("elasticsearch"),
                              "nodes": self.elasticsearch_nodes or [self.elasticsearch_url]},
            "s3": {
                "endpoint": self.s3_endpoint,
                "access_key": self.s3_access_key,
                "secret_key": self.s3_secret_key,
                "bucket": self.bucket,
            },
            "postgres": {
                "dsn": self.pg_dsn,
                # A role that may create databases: a local stack standing in for staging.
                "admin_dsn": self.pg_admin_dsn(self.pg_database),
                "host": self.pg_host,
                "port": self.pg_port,
                "database": self.pg_database,
                "user": self.pg_user,
                "password": self.pg_password,
                "version": self.versions.get("postgres"),
            },
        }

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["es_repo_root"] = str(self.es_repo_root) if self.es_repo_root else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Endpoints:
        values = dict(data)
        root = values.get("es_repo_root")
        values["es_repo_root"] = Path(str(root)) if root else None
        values.setdefault("elasticsearch_nodes", [])  # stacks started before it was recorded
        return cls(**values)  # type: ignore[arg-type]  # the JSON stack.json was written from


@dataclass
class Platform:
    cluster: SearchCluster
    store: ObjectStore
    db: MetadataDb
    admin: PgConn | None
    # Local target: Elasticsearch's path.repo. Snapshot repositories are `fs` repositories
    # under it, mirrored to the tenant's prefix in the object store (the store of record).
    # None: Elasticsearch reads and writes the object store itself through `s3` repositories.
    repo_root: Path | None

    @classmethod
    def from_endpoints(cls, ep: Endpoints, *, pg_bindir: Path | None = None,
                       request_timeout_s: float = 60) -> Platform:
        return cls(
            cluster=SearchCluster(ep.elasticsearch_url, request_timeout_s=request_timeout_s,
                                  other_nodes=[u for u in ep.elasticsearch_nodes if u != ep.elasticsearch_url]),
            store=ObjectStore(ep.s3_endpoint, ep.s3_access_key, ep.s3_secret_key, ep.bucket,
                              read_timeout_s=request_timeout_s),
            db=MetadataDb(PgConn(ep.pg_host, ep.pg_port, ep.pg_database, ep.pg_user, ep.pg_password),
                          bindir=pg_bindir, timeout_s=request_timeout_s),
            admin=PgConn(ep.pg_host, ep.pg_port, ep.pg_database, ep.pg_admin_user, ep.pg_admin_password)
            if ep.pg_admin_user else None,
            repo_root=ep.es_repo_root,
        )

    @property
    def mirrors_repositories(self) -> bool:
        return self.repo_root is not None

    def close(self) -> None:
        self.cluster.close()
