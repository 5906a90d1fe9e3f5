"""The live target's ``[target]`` table (DESIGN.md, "Live target"): an environment drdrill did
not start. Secrets are never values in the file: a ``*_env`` key names an environment variable
and a ``*_file`` key a file holding the value; they are read once, when the target starts.

```toml
[target]
environment = "staging"                 # "drill" (+ the bucket's marker) allows destructive drills
elasticsearch_url = "https://es.staging.example:9200"
elasticsearch_api_key_env = "ES_API_KEY"            # or elasticsearch_username + elasticsearch_password_env
elasticsearch_ca_file = "/etc/ssl/staging-ca.pem"   # optional
s3_endpoint = "https://minio.staging.example:9000"
s3_bucket = "es-backups"
s3_access_key_env = "S3_ACCESS_KEY"
s3_secret_key_env = "S3_SECRET_KEY"
postgres_dsn_env = "PG_DSN"             # a role that reads es_metadata and may create a database
postgres_scratch_dsn_env = "PG_SCRATCH" # optional: a database the drill may wipe
dump_password_env = "DB_PASSWORD"       # or dump_password_file
repository = "fs"                       # or "s3" (Elasticsearch reads the bucket itself)
fs_repository_dir = "/mnt/es-repo"      # with "fs": a directory every node reads as path.repo

# Optional, Kubernetes: the platform's namespace in a cluster. Then elasticsearch_url and
# s3_endpoint are left out: its Services (elasticsearch:9200, minio:9000, postgres:5432) are reached
# through port-forwards, the DSN's host and port replaced; the backup CronJob es-backup is read.
# kubeconfig = "~/.kube/staging"
# context = "staging"                   # optional
# namespace = "es-serverless"
# kustomization = "k8s/overlays/staging" # destructive drills: what a recovery applies (step 1)
# In a pod of that namespace (the restore-test CronJob): kubeconfig = "in-cluster" reads the API
# as the pod's ServiceAccount, and elasticsearch_url, s3_endpoint and the DSN's host name the
# Services directly (http://elasticsearch:9200, http://minio:9000, postgres:5432).

# Optional, per tenant: the credentials its backup job holds. The restore test then checks, read
# only, that they list and read the tenant's own path and are refused every other's and metadata/.
[target.tenant_credentials."org1/ns1"]
access_key_env = "ORG1_NS1_S3_ACCESS_KEY"   # or access_key_file
secret_key_env = "ORG1_NS1_S3_SECRET_KEY"   # or secret_key_file
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drdrill.core.layout import DRILL_MARKER_KEY as MARKER_KEY  # noqa: F401 - re-exported
from drdrill.core.layout import Tenant
from drdrill.errors import ConfigError, PasswordSourceError

DRILL_ENVIRONMENT = "drill"
REPOSITORY_KINDS = ("fs", "s3")

# Secrets: each may come from an environment variable (<name>_env) or a file (<name>_file).
_SECRETS = ("elasticsearch_api_key", "elasticsearch_password", "s3_access_key", "s3_secret_key", "postgres_dsn",
            "postgres_scratch_dsn", "dump_password")
_PLAIN = ("environment", "elasticsearch_url", "elasticsearch_username", "elasticsearch_ca_file", "s3_endpoint",
          "s3_bucket", "repository", "fs_repository_dir", "tenants_query")
_KUBERNETES = ("kubeconfig", "context", "namespace", "kustomization")
TENANT_CREDENTIALS = "tenant_credentials"
# kubeconfig = "in-cluster": the pod's ServiceAccount, the Services reached by their names.
IN_CLUSTER = "in-cluster"
KNOWN_KEYS = frozenset(_PLAIN) | {f"{s}_{how}" for s in _SECRETS for how in ("env", "file")} | \
    frozenset(_KUBERNETES) | {TENANT_CREDENTIALS}
_TENANT_SECRETS = ("access_key", "secret_key")


@dataclass(frozen=True)
class SecretRef:
    """Where a secret is: ``("env", VAR)`` or ``("file", PATH)``; the key it was given under."""

    key: str
    source: Literal["env", "file"]
    where: str

    def read(self, environ: Mapping[str, str]) -> str:
        """The value, with one trailing newline of a file removed. Errors name the variable or
        file, never the value."""
        if self.source == "env":
            value = environ.get(self.where)
            if value is None:
                raise PasswordSourceError(f"[target] {self.key}_env: environment variable {self.where} is not set",
                                          hint=f"export {self.where}=...")
        else:
            try:
                value = Path(self.where).read_text().removesuffix("\n").removesuffix("\r")
            except OSError as exc:
                raise PasswordSourceError(f"[target] {self.key}_file: cannot read {self.where}: "
                                          f"{exc.strerror or exc}") from None
        if not value:
            raise PasswordSourceError(f"[target] {self.key}: {self.source} {self.where} is empty")
        return value

    def describe(self) -> str:
        return f"${self.where}" if self.source == "env" else f"file {self.where}"


@dataclass(frozen=True)
class TenantCredentialRef:
    """Where one tenant's backup credentials are (its own MinIO user's keys)."""

    tenant: Tenant
    access_key: SecretRef
    secret_key: SecretRef


@dataclass(frozen=True)
class ServiceRef:
    """A Service of the platform's namespace and the port drdrill forwards to."""

    name: str
    port: int


@dataclass(frozen=True)
class KubernetesRef:
    """``kubeconfig``, ``context`` and ``namespace``: the platform's namespace in a cluster. Its
    Services are the runbook's (``elasticsearch:9200``, ``minio:9000``, ``postgres:5432``),
    reached through port-forwards (the DSN's user, password and database are used, its host and
    port replaced); the nightly backup is the CronJob ``es-backup``. ``kubeconfig`` None: in a pod
    (``kubeconfig = "in-cluster"``), the ServiceAccount's API and the Services reached directly."""

    kubeconfig: Path | None
    namespace: str
    context: str | None = None
    kustomization: Path | None = None  # the platform's manifests: what a recovery applies (step 1)
    elasticsearch: ServiceRef = ServiceRef("elasticsearch", 9200)
    minio: ServiceRef = ServiceRef("minio", 9000)
    postgres: ServiceRef = ServiceRef("postgres", 5432)
    backup_cronjob: str = "es-backup"

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> KubernetesRef | None:
        given = {k: table[k] for k in _KUBERNETES if k in table}
        if not given:
            return None
        for key, value in given.items():
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where} {key}", f"{value!r} is not a non-empty string")
        if "kubeconfig" not in given or "namespace" not in given:
            raise ConfigError(where, "kubeconfig and namespace go together (context is optional)")
        manifests = Path(given["kustomization"]).expanduser() if "kustomization" in given else None
        if manifests is not None and not (manifests / "kustomization.yaml").is_file():
            raise ConfigError(f"{where} kustomization", f"{manifests} holds no kustomization.yaml",
                              hint="the directory `kubectl apply -k` takes for the platform")
        if given["kubeconfig"] == IN_CLUSTER:
            if "context" in given:
                raise ConfigError(f"{where} context", "an in-cluster ServiceAccount has no contexts")
            return cls(None, given["namespace"], None, manifests)
        return cls(Path(given["kubeconfig"]).expanduser(), given["namespace"], given.get("context"), manifests)

    @property
    def in_cluster(self) -> bool:
        return self.kubeconfig is None

    def describe(self) -> dict[str, Any]:
        return {"kubeconfig": str(self.kubeconfig) if self.kubeconfig else IN_CLUSTER,
                "context": self.context, "namespace": self.namespace,
                "kustomization": str(self.kustomization) if self.kustomization else None,
                "services": {s.name: s.port for s in (self.elasticsearch, self.minio, self.postgres)},
                "backup_cronjob": self.backup_cronjob}


def service_host(host: str, environ: Mapping[str, str]) -> str:
    """In a pod, a Service's name as the kubelet publishes it (``<NAME>_SERVICE_HOST``, as the
    platform's backup scripts read it), for clusters without a DNS add-on; else the name itself."""
    return environ.get(f"{host.upper().replace('-', '_')}_SERVICE_HOST") or host


def service_url(url: str, environ: Mapping[str, str]) -> str:
    """``url`` with its host replaced by :func:`service_host` (its port is the Service's)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return url
    found = service_host(parts.hostname, environ)
    if found == parts.hostname:
        return url
    netloc = f"{found}:{parts.port}" if parts.port else found
    return urlunsplit(parts._replace(netloc=netloc))


def _select_only(query: str | None, where: str) -> str | None:
    """The tenant query runs in a read-only session anyway; one statement, a SELECT (or WITH)."""
    if query is None:
        return None
    text = query.strip().rstrip(";").strip()
    if ";" in text or text.split(None, 1)[0].lower() not in ("select", "with"):
        raise ConfigError(f"{where} tenants_query", "must be one SELECT yielding org_id, namespace, index_name",
                          hint="e.g. SELECT org_id, namespace, index_name FROM tenant_containers")
    return text


@dataclass(frozen=True)
class LiveTargetSettings:
    environment: str
    elasticsearch_url: str
    s3_endpoint: str
    s3_bucket: str
    s3_access_key: SecretRef
    s3_secret_key: SecretRef
    postgres_dsn: SecretRef
    dump_password: SecretRef
    repository: Literal["fs", "s3"]
    fs_repository_dir: Path | None = None
    elasticsearch_api_key: SecretRef | None = None
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretRef | None = None
    elasticsearch_ca_file: Path | None = None
    postgres_scratch_dsn: SecretRef | None = None
    tenant_credentials: tuple[TenantCredentialRef, ...] = ()
    kubernetes: KubernetesRef | None = None
    # The platform's tenant list where its schema differs from the runbook's: a query yielding
    # (org_id, namespace, index_name) rows. None: tenant_containers.
    tenants_query: str | None = None
    source: str = field(default="config", compare=False)

    @property
    def may_be_destroyed(self) -> bool:
        """The first of the two marks a destructive drill needs (the bucket's marker is the other)."""
        return self.environment == DRILL_ENVIRONMENT

    def describe(self) -> dict[str, Any]:
        """What the report records: endpoints and where secrets come from, never their values."""
        return {
            "environment": self.environment, "elasticsearch_url": self.elasticsearch_url,
            "s3_endpoint": self.s3_endpoint, "s3_bucket": self.s3_bucket, "repository": self.repository,
            "fs_repository_dir": str(self.fs_repository_dir) if self.fs_repository_dir else None,
            "elasticsearch_auth": ("api key" if self.elasticsearch_api_key else
                                   f"user {self.elasticsearch_username}" if self.elasticsearch_username else "none"),
            "scratch_database": "given" if self.postgres_scratch_dsn else "created per drill",
            "tenant_credentials": [c.tenant.key for c in self.tenant_credentials],
            "tenant_list": self.tenants_query or "tenant_containers",
            **({"kubernetes": self.kubernetes.describe()} if self.kubernetes else {}),
        }

    @classmethod
    def from_table(cls, table: Mapping[str, Any], *, source: str = "config") -> LiveTargetSettings:
        where = f"{source}: [target]"
        unknown = sorted(set(table) - KNOWN_KEYS)
        if unknown:
            raise ConfigError(where, f"unknown key(s) {', '.join(unknown)}",
                              hint="secrets go in *_env or *_file keys; see DESIGN.md, Live target")
        kubernetes = KubernetesRef.from_table(table, where)
        tenant_credentials = _tenant_credentials(table.get(TENANT_CREDENTIALS, {}), where)
        for key, value in table.items():
            if key == TENANT_CREDENTIALS:
                continue
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where} {key}", f"{value!r} is not a non-empty string")
        secrets = {name: _secret(table, name, where) for name in _SECRETS}

        def required(key: str) -> str:
            if key not in table:
                raise ConfigError(f"{where} {key}", "is required")
            return str(table[key])

        def required_secret(name: str) -> SecretRef:
            ref = secrets[name]
            if ref is None:
                raise ConfigError(f"{where} {name}_env", f"is required (or {name}_file)")
            return ref

        repository = required("repository")
        if repository not in REPOSITORY_KINDS:
            raise ConfigError(f"{where} repository", f"{repository!r} is not one of {', '.join(REPOSITORY_KINDS)}")
        fs_dir = table.get("fs_repository_dir")
        if repository == "fs" and not fs_dir:
            raise ConfigError(f"{where} fs_repository_dir", "is required with repository = \"fs\"",
                              hint="a directory every Elasticsearch node reads as path.repo")
        if fs_dir and not Path(fs_dir).is_absolute():
            raise ConfigError(f"{where} fs_repository_dir", f"{fs_dir!r} is not an absolute path")
        basic = table.get("elasticsearch_username") or secrets["elasticsearch_password"]
        if secrets["elasticsearch_api_key"] and basic:
            raise ConfigError(where, "give an Elasticsearch API key or a username and password, not both")
        if bool(table.get("elasticsearch_username")) != bool(secrets["elasticsearch_password"]):
            raise ConfigError(where, "elasticsearch_username and elasticsearch_password_env go together")
        for url_key in ("elasticsearch_url", "s3_endpoint"):
            if kubernetes is not None and not kubernetes.in_cluster:
                if url_key in table:
                    raise ConfigError(f"{where} {url_key}", "with kubeconfig, drdrill reaches the platform's "
                                      "Services through port-forwards", hint=f"remove {url_key}, or kubeconfig")
            elif not required(url_key).startswith(("http://", "https://")):
                raise ConfigError(f"{where} {url_key}", f"{table[url_key]!r} is not an http(s) URL")
        return cls(
            environment=required("environment"), elasticsearch_url=str(table.get("elasticsearch_url", "")).rstrip("/"),
            s3_endpoint=str(table.get("s3_endpoint", "")).rstrip("/"), s3_bucket=required("s3_bucket"),
            s3_access_key=required_secret("s3_access_key"), s3_secret_key=required_secret("s3_secret_key"),
            postgres_dsn=required_secret("postgres_dsn"), dump_password=required_secret("dump_password"),
            repository=repository,  # type: ignore[arg-type]  # checked above
            fs_repository_dir=Path(fs_dir) if fs_dir else None,
            elasticsearch_api_key=secrets["elasticsearch_api_key"],
            elasticsearch_username=table.get("elasticsearch_username"),
            elasticsearch_password=secrets["elasticsearch_password"],
            elasticsearch_ca_file=Path(table["elasticsearch_ca_file"]) if table.get("elasticsearch_ca_file") else None,
            postgres_scratch_dsn=secrets["postgres_scratch_dsn"], tenant_credentials=tenant_credentials,
            kubernetes=kubernetes, tenants_query=_select_only(table.get("tenants_query"), where), source=source,
        )


def _tenant_credentials(table: Any, where: str) -> tuple[TenantCredentialRef, ...]:
    where = f"{where} {TENANT_CREDENTIALS}"
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table of tenants", hint='[target.tenant_credentials."org1/ns1"]')
    found = []
    for key, entry in table.items():
        tenant = Tenant.parse(str(key))
        here = f'{where}."{key}"'
        if not isinstance(entry, Mapping):
            raise ConfigError(here, "must be a table with access_key_env and secret_key_env (or *_file)")
        unknown = sorted(set(entry) - {f"{s}_{how}" for s in _TENANT_SECRETS for how in ("env", "file")})
        if unknown:
            raise ConfigError(here, f"unknown key(s) {', '.join(unknown)}")
        refs = {}
        for name in _TENANT_SECRETS:
            ref = _secret(entry, name, here)
            if ref is None:
                raise ConfigError(f"{here} {name}_env", f"is required (or {name}_file)")
            refs[name] = SecretRef(f"{TENANT_CREDENTIALS}.{tenant}.{name}", ref.source, ref.where)
        found.append(TenantCredentialRef(tenant, refs["access_key"], refs["secret_key"]))
    return tuple(sorted(found, key=lambda c: c.tenant))


def _secret(table: Mapping[str, Any], name: str, where: str) -> SecretRef | None:
    env, file = table.get(f"{name}_env"), table.get(f"{name}_file")
    if env and file:
        raise ConfigError(f"{where} {name}", f"give {name}_env or {name}_file, not both")
    if env:
        return SecretRef(name, "env", env)
    if file:
        return SecretRef(name, "file", file)
    return None


@dataclass(frozen=True)
class LiveSecrets:
    """The secrets' values, read once. Never printed: no field shows in the repr."""

    s3_access_key: str = field(repr=False)
    s3_secret_key: str = field(repr=False)
    postgres_dsn: str = field(repr=False)
    dump_password: bytes = field(repr=False)
    elasticsearch_api_key: str | None = field(default=None, repr=False)
    elasticsearch_password: str | None = field(default=None, repr=False)
    postgres_scratch_dsn: str | None = field(default=None, repr=False)
    # tenant key -> (access key, secret key) of its own backup credentials
    tenant_keys: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, settings: LiveTargetSettings, environ: Mapping[str, str] | None = None) -> LiveSecrets:
        env = os.environ if environ is None else environ

        def optional(ref: SecretRef | None) -> str | None:
            return ref.read(env) if ref is not None else None

        return cls(
            s3_access_key=settings.s3_access_key.read(env), s3_secret_key=settings.s3_secret_key.read(env),
            postgres_dsn=settings.postgres_dsn.read(env), dump_password=os.fsencode(settings.dump_password.read(env)),
            elasticsearch_api_key=optional(settings.elasticsearch_api_key),
            elasticsearch_password=optional(settings.elasticsearch_password),
            postgres_scratch_dsn=optional(settings.postgres_scratch_dsn),
            tenant_keys={c.tenant.key: (c.access_key.read(env), c.secret_key.read(env))
                         for c in settings.tenant_credentials},
        )
