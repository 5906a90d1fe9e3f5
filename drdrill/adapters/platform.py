"""The platform under drill, as adapters bound to one target's endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drdrill.adapters.elasticsearch import SearchCluster
from drdrill.adapters.postgres import MetadataDb, PgConn
from drdrill.adapters.s3 import ObjectStore
from drdrill.targets.base import Endpoints


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
            cluster=SearchCluster(ep.elasticsearch_url, request_timeout_s=request_timeout_s),
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
