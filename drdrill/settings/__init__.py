"""Typed configuration, loaded once and passed explicitly.

Three kinds of settings, each read in exactly one place:

* :class:`Paths` – where provisioned software and stack state live (environment);
* :class:`StackSettings` – how the local target's services are started (environment + flags);
* :class:`DrillSettings` – what a drill does (``drdrill.toml`` or ``--config FILE``), including
  the ``[target]`` table of the live target (:class:`LiveTargetSettings`).

Only :func:`load_paths`, :func:`stack_settings_from_env` and :func:`load_settings` look at the
environment or the file system; everything downstream receives these objects as arguments.

Every table and key is shown, with its default, in ``starter.toml`` beside this file (what
``drdrill init`` writes); ``[target]`` is :mod:`drdrill.settings.live`'s.
Every key is optional; unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drdrill.core.durations import parse_duration
from drdrill.core.kdf import RECOMMENDED_PBKDF2_ITERATIONS, RUNBOOK_DEFAULT, KdfSpec
from drdrill.core.layout import Tenant, check_unambiguous
from drdrill.core.objectives import Objectives
from drdrill.core.points import Policy, check_policy
from drdrill.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from drdrill.settings.live import LiveTargetSettings

# Pinned defaults. Elasticsearch: the newest 9.x integ-test-zip on Maven Central when this was
# written; 8.19.x stays startable because users run both majors.
DEFAULT_ES_VERSION = "9.5.4"
DEFAULT_ES8_VERSION = "8.19.21"
# MinIO publishes no semver tags, so the Go module proxy serves it under a pseudo-version;
# pinning the exact one makes every machine build the same server.
DEFAULT_MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
DEFAULT_BUCKET = "es-backups"
# 2 cores / 24 GB: 1 GiB of heap leaves room for two stacks at once plus the tests.
DEFAULT_ES_HEAP_MB = 1024
# Each node is a JVM of heap + ~0.5 GB off-heap on this 2-core / 24 GB kind of machine.
MAX_ES_NODES = 9

_ES_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$", re.ASCII)
# A stack name becomes one directory under the stacks directory: one safe path segment, like
# a tenant's segments, so no name can reach outside it ("..", "/x", "") or hide (".x").
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", re.ASCII)


def check_stack_name(name: object, what: str = "stack name") -> str:
    """The name itself, or a usage error (exit 2) naming the value."""
    if not isinstance(name, str) or not _STACK_NAME.fullmatch(name) or ".." in name:
        raise UsageError(f"{what} {name!r} is not valid: expected 1-63 characters of letters, digits, "
                         "'.', '-' or '_', starting with a letter or digit",
                         hint="a stack name is a name, not a path")
    return name


@dataclass(frozen=True)
class Paths:
    """Where drdrill keeps provisioned software (per machine) and stack state (per stack)."""

    cache_dir: Path
    state_dir: Path

    @property
    def stacks_dir(self) -> Path:
        return self.state_dir / "stacks"

    def stack_dir(self, name: str) -> Path:
        """The work directory of stack ``name``, directly inside :attr:`stacks_dir` (no I/O)."""
        return self.stacks_dir / check_stack_name(name)

    def check_stack_dir(self, path: Path) -> Path:
        """Refuse to touch ``path`` unless it really is a directory directly inside the stacks
        directory (a symlink planted there could point anywhere)."""
        root = self.stacks_dir.resolve()
        resolved = path.resolve()
        if resolved.parent != root or path.is_symlink():
            raise UsageError(f"stack directory {path} resolves to {resolved}, outside {root}",
                             hint="remove the stray link in the stacks directory")
        return resolved


def load_paths(environ: Mapping[str, str] | None = None, *, euid: int | None = None) -> Paths:
    """Resolve cache and state directories.

    As root the services run as an unprivileged user, which must be able to read the
    provisioned software and write its state; ``/root`` is usually mode 700, so root uses
    ``/var/cache`` and ``/var/lib`` instead of the home directory.
    """
    env = os.environ if environ is None else environ
    uid = os.geteuid() if euid is None else euid
    home = Path(env.get("HOME", "~")).expanduser()
    if uid == 0:
        default_cache, default_state = Path("/var/cache/drdrill"), Path("/var/lib/drdrill")
    else:
        default_cache = Path(env.get("XDG_CACHE_HOME") or home / ".cache") / "drdrill"
        default_state = Path(env.get("XDG_STATE_HOME") or home / ".local/state") / "drdrill"
    cache = Path(env["DRDRILL_CACHE_DIR"]) if env.get("DRDRILL_CACHE_DIR") else default_cache
    state = Path(env["DRDRILL_STATE_DIR"]) if env.get("DRDRILL_STATE_DIR") else default_state
    return Paths(cache_dir=cache, state_dir=state)


@dataclass(frozen=True)
class StackSettings:
    """How the local target's services are provisioned and started."""

    es_version: str = DEFAULT_ES_VERSION
    es_heap_mb: int = DEFAULT_ES_HEAP_MB
    minio_version: str = DEFAULT_MINIO_VERSION
    bucket: str = DEFAULT_BUCKET
    database: str = "es_metadata"
    db_user: str = "es_user"
    ready_timeout_s: float = 180.0
    stop_timeout_s: float = 30.0
    # Elasticsearch nodes the local target starts (one cluster on loopback); 1 is a single node.
    elasticsearch_nodes: int = 1

    def __post_init__(self) -> None:
        if not _ES_VERSION_RE.match(self.es_version):
            raise ConfigError("es_version", f"{self.es_version!r} is not a version like 9.5.4")
        if es_major(self.es_version) not in (8, 9):
            raise ConfigError("es_version", f"{self.es_version} is not supported", hint="use 8.19.x or 9.x")
        if not 256 <= self.es_heap_mb <= 16384:
            raise ConfigError("es_heap_mb", f"{self.es_heap_mb} is outside 256..16384 MB")
        if self.ready_timeout_s <= 0 or self.stop_timeout_s <= 0:
            raise ConfigError("timeouts", "must be positive")
        if isinstance(self.elasticsearch_nodes, bool) or not isinstance(self.elasticsearch_nodes, int) \
                or not 1 <= self.elasticsearch_nodes <= MAX_ES_NODES:
            raise ConfigError("elasticsearch_nodes", f"{self.elasticsearch_nodes!r} is outside 1..{MAX_ES_NODES}",
                              hint="a cluster of 3 drills replicas and node loss; 1 is the quickest")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket):
            raise ConfigError("bucket", f"{self.bucket!r} is not a valid S3 bucket name")


def with_drill_stack(stack: StackSettings, drill: DrillSettings,
                     environ: Mapping[str, str] | None = None) -> StackSettings:
    """The stack a drill starts: the drill file's ``[stack]`` unless ``DRDRILL_ES_NODES`` says
    otherwise (the environment, like the command line, wins over the file)."""
    env = os.environ if environ is None else environ
    if drill.elasticsearch_nodes is None or env.get("DRDRILL_ES_NODES"):
        return stack
    return replace(stack, elasticsearch_nodes=drill.elasticsearch_nodes)


def es_major(version: str) -> int:
    return int(version.split(".", 1)[0])


def stack_settings_from_env(environ: Mapping[str, str] | None = None, **overrides: object) -> StackSettings:
    """Settings with ``DRDRILL_ES_VERSION`` / ``DRDRILL_ES_HEAP_MB`` / ``DRDRILL_MINIO_VERSION``
    applied, then explicit overrides (from the command line) on top."""
    env = os.environ if environ is None else environ
    from_env: dict[str, Any] = {}
    if env.get("DRDRILL_ES_VERSION"):
        from_env["es_version"] = env["DRDRILL_ES_VERSION"]
    if env.get("DRDRILL_MINIO_VERSION"):
        from_env["minio_version"] = env["DRDRILL_MINIO_VERSION"]
    if env.get("DRDRILL_ES_NODES"):
        raw = env["DRDRILL_ES_NODES"]
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigError("DRDRILL_ES_NODES", f"{raw!r} is not a whole number of nodes")
        from_env["elasticsearch_nodes"] = int(raw)
    if env.get("DRDRILL_ES_HEAP_MB"):
        raw = env["DRDRILL_ES_HEAP_MB"]
        if not (raw.isascii() and raw.isdigit()):
            raise ConfigError("DRDRILL_ES_HEAP_MB", f"{raw!r} is not a whole number of megabytes")
        from_env["es_heap_mb"] = int(raw)
    from_env.update({k: v for k, v in overrides.items() if v is not None})
    return replace(StackSettings(), **from_env)


# --- drill settings -------------------------------------------------------------------------


MAX_REPLICAS = 10


@dataclass(frozen=True)
class DataSpec:
    """The synthetic data a drill seeds per tenant."""

    indices_per_tenant: int = 2
    docs_per_index: int = 1000
    seed: int = 42
    # number_of_replicas of the seeded indices; None: as many as the cluster the drill seeds can
    # hold, up to the platform's one (drdrill.core.cluster_state.default_replicas).
    replicas: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.indices_per_tenant <= 100:
            raise ConfigError("indices_per_tenant", f"{self.indices_per_tenant} is outside 1..100")
        if self.replicas is not None and not 0 <= self.replicas <= MAX_REPLICAS:
            raise ConfigError("data.replicas", f"{self.replicas} is outside 0..{MAX_REPLICAS}")
        if not 0 <= self.docs_per_index <= 100_000_000:
            raise ConfigError("docs_per_index", f"{self.docs_per_index} is outside 0..100000000")


DEFAULT_TENANTS = (Tenant("org1", "ns1"), Tenant("org1", "ns2"), Tenant("org2", "ns1"))
# A canary writer with no pause between rounds would spin on the services it measures.
MIN_CANARY_INTERVAL_S = 0.01
# Tenants restored at once. `bench --only parallel` (100 tenants, 2 CPUs, one node) measured
# the restore phase at 44.3 s one after another, 31.6 s two, 28.4 s four and 28.5 s eight at a
# time; Elasticsearch also initialises 4 restored primaries per node at a time
# (cluster.routing.allocation.node_initial_primaries_recoveries).
DEFAULT_RESTORE_CONCURRENCY = 4


@dataclass(frozen=True)
class ContainerImages:
    """The images ``--target containers`` runs, from the ``[containers]`` table (None: drdrill's
    own local builds, ``drdrill images build``). Official images follow the same conventions."""

    elasticsearch: str | None = None
    minio: str | None = None
    postgres: str | None = None

    def named(self) -> dict[str, str]:
        return {k: v for k, v in (("elasticsearch", self.elasticsearch), ("minio", self.minio),
                                  ("postgres", self.postgres)) if v}


@dataclass
class DrillSettings:
    objectives: Objectives = field(default_factory=Objectives)
    tenants: list[Tenant] = field(default_factory=lambda: list(DEFAULT_TENANTS))
    data: DataSpec = field(default_factory=DataSpec)
    canary_interval_s: float = 0.25
    # Canaries keep being written this long after the backup: they are the data a real
    # disaster at that moment would lose, so RPO > 0 is measured, not assumed.
    post_backup_s: float = 2.0
    kdf: KdfSpec = RUNBOOK_DEFAULT
    # The live target's [target] table (None: not configured).
    target: LiveTargetSettings | None = None
    # The project's one history (None: reports/history.jsonl in the project directory).
    history_path: Path | None = None
    # The key that signs history lines and evidence packs: a PEM file, or a variable holding one.
    evidence_key_file: str | None = None
    evidence_key_env: str | None = None
    # [evidence]: a team's own promise -> controls mapping (replaces drdrill's), who tested and
    # whether independently of the platform's operators: recorded as given, never guessed.
    controls_file: Path | None = None
    tester: str | None = None
    independent: bool | None = None
    # Tenants restored at once (runbook step 4): see DEFAULT_RESTORE_CONCURRENCY.
    restore_concurrency: int = DEFAULT_RESTORE_CONCURRENCY
    # Which recovery point the live restore test restores: newest, oldest (in the retention
    # window) or random (seeded by the drill id).
    restore_point: Policy = "newest"
    # The containers target's images (see ContainerImages).
    images: ContainerImages = field(default_factory=ContainerImages)
    # [restore_test] replicas: number_of_replicas of the restore test's copies on a live cluster.
    # 0 keeps the copies light, but leaves the replica rebuild a production recovery needs
    # unmeasured (the report records it as a weakness of fidelity).
    restore_test_replicas: int = 0
    # [restore_test] pushgateway_url: where each run pushes its metrics (None: not pushed).
    pushgateway_url: str | None = None
    # [evidence] store_bucket: a bucket of drdrill's own on the drill's S3 endpoint that keeps
    # every run's signed pack and report.json (None: no evidence store). Never the backup bucket.
    evidence_store_bucket: str | None = None
    # [stack] elasticsearch_nodes: the cluster a drill starts (None: the stack settings' own).
    elasticsearch_nodes: int | None = None

    def __post_init__(self) -> None:
        if self.restore_concurrency < 1:
            raise ConfigError("restore.concurrency", f"{self.restore_concurrency} is not a positive number",
                              hint="1 restores one tenant after another")
        if not self.canary_interval_s >= MIN_CANARY_INTERVAL_S:
            raise ConfigError("canary.interval", f"{self.canary_interval_s:g}s is too short",
                              hint=f"at least {MIN_CANARY_INTERVAL_S * 1000:g}ms")
        check_unambiguous(self.tenants)

    @property
    def wait_budget_s(self) -> float:
        """Every wait is bounded by the objectives: a recovery step that needs longer than
        1.5 x the RTO target has failed it anyway, and a hung service must not hang the drill."""
        return max(20.0, 1.5 * self.objectives.rto_seconds)

    @property
    def request_timeout_s(self) -> float:
        """One call to a service may take a quarter of the wait budget (5 s to 60 s): a hung
        service is noticed after a few attempts, well inside the budget."""
        return min(60.0, max(5.0, self.wait_budget_s / 4))


_KNOWN = {
    "objectives": {"rto", "rpo"},
    "data": {"tenants", "indices_per_tenant", "docs_per_index", "replicas"},
    "canary": {"interval", "post_backup"},
    "encryption": {"pbkdf2", "md", "iterations"},
    "target": None,  # checked by the live target's own settings
    "history": {"path"},
    "evidence": {"key_file", "key_env", "controls_file", "tester", "independent", "store_bucket"},
    "restore": {"concurrency"},
    "restore_test": {"point", "pushgateway_url", "replicas"},
    "containers": {"elasticsearch_image", "minio_image", "postgres_image"},
    "stack": {"elasticsearch_nodes"},
}


def load_settings(path: Path, base: DrillSettings | None = None) -> DrillSettings:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"config file {path} not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path} is unreadable: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc
    return settings_from_dict(raw, base or DrillSettings(), source=str(path), path_base=path.parent)


def _section(raw: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}]", "must be a table")
    known = _KNOWN[name]
    unknown = set(value) - known if known is not None else set()
    if unknown:
        raise ConfigError(f"{source}: [{name}]", f"unknown key(s) {', '.join(sorted(unknown))}",
                          hint=f"known: {', '.join(sorted(known or ()))}")
    return value


def _typed(section: dict[str, Any], key: str, default: Any, kind: type, where: str) -> Any:
    """A value of exactly ``kind``: ``pbkdf2 = "no"`` must not read as True, nor ``true`` as 1."""
    value = section.get(key, default)
    if value is None:
        return None
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}.{key}", f"{value!r} is not a whole number")
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}.{key}", f"{value!r} is not true or false")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}", f"{value!r} is not a string")
    return value


_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/:@-]{0,254}")


def _check_image(value: str | None, key: str) -> str | None:
    """An image reference as Docker spells one (repository[:tag][@digest])."""
    if value is not None and not _IMAGE_RE.fullmatch(value):
        raise ConfigError(f"containers.{key}", f"{value!r} is not an image reference",
                          hint="e.g. docker.elastic.co/elasticsearch/elasticsearch:9.5.4")
    return value


def settings_from_dict(raw: dict[str, Any], base: DrillSettings, *, source: str = "config",
                       path_base: Path = Path()) -> DrillSettings:
    unknown = set(raw) - set(_KNOWN)
    if unknown:
        raise ConfigError(source, f"unknown section(s) {', '.join(sorted(unknown))}",
                          hint=f"known: {', '.join(sorted(_KNOWN))}")
    changes: dict[str, Any] = {}
    objectives = _section(raw, "objectives", source)
    if objectives:
        changes["objectives"] = Objectives(
            parse_duration(objectives.get("rto", base.objectives.rto_seconds), f"{source}: objectives.rto"),
            parse_duration(objectives.get("rpo", base.objectives.rpo_seconds), f"{source}: objectives.rpo"))
    data = _section(raw, "data", source)
    if data:
        tenants = data.get("tenants")
        if tenants is not None:
            if not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) for t in tenants):
                raise ConfigError(f"{source}: data.tenants", "must be a non-empty list of \"org/namespace\" strings")
            changes["tenants"] = [Tenant.parse(t) for t in tenants]
        changes["data"] = DataSpec(
            indices_per_tenant=_typed(data, "indices_per_tenant", base.data.indices_per_tenant, int, "data"),
            docs_per_index=_typed(data, "docs_per_index", base.data.docs_per_index, int, "data"),
            seed=base.data.seed, replicas=_typed(data, "replicas", base.data.replicas, int, "data"))
    canary = _section(raw, "canary", source)
    if canary:
        changes["canary_interval_s"] = parse_duration(canary.get("interval", base.canary_interval_s),
                                                      f"{source}: canary.interval")
        changes["post_backup_s"] = parse_duration(canary.get("post_backup", base.post_backup_s),
                                                  f"{source}: canary.post_backup")
    encryption = _section(raw, "encryption", source)
    if encryption:
        pbkdf2 = _typed(encryption, "pbkdf2", False, bool, "encryption")
        iterations = _typed(encryption, "iterations", None, int, "encryption")
        changes["kdf"] = KdfSpec.from_options(
            md=_typed(encryption, "md", "sha256", str, "encryption"), pbkdf2=pbkdf2,
            iterations=iterations if iterations is not None or not pbkdf2 else RECOMMENDED_PBKDF2_ITERATIONS)
    history = _section(raw, "history", source)
    if history.get("path") is not None:
        changes["history_path"] = Path(_typed(history, "path", None, str, "history"))
    evidence = _section(raw, "evidence", source)
    if evidence:
        changes["evidence_key_file"] = _typed(evidence, "key_file", None, str, "evidence")
        changes["evidence_key_env"] = _typed(evidence, "key_env", None, str, "evidence")
        controls_file = _typed(evidence, "controls_file", None, str, "evidence")
        if controls_file is not None:  # relative to the settings file, as a person reads it
            changes["controls_file"] = (path_base / controls_file) if not Path(controls_file).is_absolute() \
                else Path(controls_file)
        changes["tester"] = _typed(evidence, "tester", None, str, "evidence")
        changes["independent"] = _typed(evidence, "independent", None, bool, "evidence")
        if evidence.get("store_bucket") is not None:
            changes["evidence_store_bucket"] = _check_bucket(_typed(evidence, "store_bucket", None, str, "evidence"),
                                                             f"{source}: evidence.store_bucket")
    restore = _section(raw, "restore", source)
    if restore:
        changes["restore_concurrency"] = _typed(restore, "concurrency", base.restore_concurrency, int, "restore")
    restore_test = _section(raw, "restore_test", source)
    if restore_test:
        changes["restore_point"] = check_policy(restore_test.get("point", base.restore_point), "restore_test.point")
        replicas = _typed(restore_test, "replicas", base.restore_test_replicas, int, "restore_test")
        if not 0 <= replicas <= MAX_REPLICAS:
            raise ConfigError(f"{source}: restore_test.replicas", f"{replicas} is outside 0..{MAX_REPLICAS}")
        changes["restore_test_replicas"] = replicas
        if restore_test.get("pushgateway_url") is not None:
            changes["pushgateway_url"] = _check_url(_typed(restore_test, "pushgateway_url", None, str, "restore_test"),
                                                    f"{source}: restore_test.pushgateway_url")
    containers = _section(raw, "containers", source)
    if containers:
        changes["images"] = ContainerImages(**{
            key.removesuffix("_image"): _check_image(_typed(containers, key, None, str, "containers"), key)
            for key in sorted(_KNOWN["containers"] or ())})
    stack = _section(raw, "stack", source)
    if stack.get("elasticsearch_nodes") is not None:
        nodes = _typed(stack, "elasticsearch_nodes", None, int, "stack")
        replace(StackSettings(), elasticsearch_nodes=nodes)  # the same bounds as everywhere
        changes["elasticsearch_nodes"] = nodes
    target = _section(raw, "target", source)
    if target:
        from drdrill.settings.live import LiveTargetSettings

        changes["target"] = LiveTargetSettings.from_table(target, source=source)
    settings = replace(base, **changes)
    _check_store_apart(settings, source)
    return settings


_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)


def _check_bucket(value: str, where: str) -> str:
    if not _BUCKET_RE.fullmatch(value) or ".." in value:
        raise ConfigError(where, f"{value!r} is not a valid S3 bucket name", hint="e.g. drdrill-evidence")
    return value


def _check_url(value: str, where: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value, re.ASCII):
        raise ConfigError(where, f"{value!r} is not an http(s) URL", hint="e.g. http://pushgateway:9091")
    return value


def _check_store_apart(settings: DrillSettings, source: str) -> None:
    """The evidence store is a bucket of drdrill's own: never the bucket the backups are in (the
    live target's [target] s3_bucket, else the stack's), where drdrill writes nothing of its own."""
    store = settings.evidence_store_bucket
    backups = settings.target.s3_bucket if settings.target is not None else DEFAULT_BUCKET
    if store is not None and store == backups:
        raise ConfigError(f"{source}: evidence.store_bucket", f"{store!r} is the backup bucket",
                          hint="name a bucket of drdrill's own, e.g. drdrill-evidence; drdrill never writes "
                               "into the backup bucket")

