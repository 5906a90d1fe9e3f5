"""The object-store layout of the platform's backup bucket (``es-backups`` by default).

Pure naming: no I/O. Everything that writes, lists or deletes backup objects goes through these
names, so "is this object ours?" has exactly one answer. Parsers return ``None`` for names they
do not recognise rather than guessing: an object we cannot name is an object retention must
never touch (DESIGN.md, safety rules).

Layout (DESIGN.md):

* ``<org_id>/<namespace>/`` — the tenant's Elasticsearch snapshot repository (``fs``/``s3`` blobs);
* ``metadata/<org_id>/metadata_backup_<org_id>_<ts>.sql.enc`` — per-organisation dump;
* ``metadata/all/metadata_backup_all_<ts>.sql.enc`` — whole-database dump;
* ``<dump key>.sha256`` — its checksum record, ``"<hex>  <basename>\\n"`` as ``sha256sum`` writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from drdrill.errors import BackupIntegrityError, ConfigError

DEFAULT_BUCKET = "es-backups"
METADATA_PREFIX = "metadata/"
ALL_SCOPE = "all"


def metadata_scopes(tenants: Iterable[Tenant]) -> list[str]:
    """The metadata dumps a backup of ``tenants`` writes: the whole database, then each org."""
    return [ALL_SCOPE, *sorted({t.org_id for t in tenants})]
CHECKSUM_SUFFIX = ".sha256"
SNAPSHOT_PREFIX = "drdrill-"

# Compatible with Elasticsearch index names (the segments become index-name prefixes) and with
# path segments in S3 keys: lowercase, no '.', no '/', must not start with '-' or '_'.
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SEGMENT_RULE = "1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
# "metadata" as an org would put its snapshot repository inside the dumps' prefix, and "all" as an
# org would make metadata/all/ mean two things. Refuse both rather than guess later.
_RESERVED_ORGS = frozenset({"metadata", ALL_SCOPE, "drdrill"})
# The object that marks a bucket's environment as one destructive drills may run on
# (DESIGN.md, Live target); "drdrill" is reserved so no tenant's path can hold it.
DRILL_MARKER_KEY = "drdrill/DRILL_ENVIRONMENT"

# drdrill writes the runbook's form, `date +%Y%m%d_%H%M%S` (UTC), as the platform's own job does;
# its earlier releases wrote the compact ISO form, which only drdrill ever wrote. Both are read.
_TS_ISO = re.compile(r"(\d{8})T(\d{6})Z")
_TS_SCRIPT = re.compile(r"(\d{8})_(\d{6})")
_SNAPSHOT = re.compile(r"drdrill-(\d{8})t(\d{6})z")  # ES snapshot names must be lowercase
_SHA256_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")

# Blobs Elasticsearch's blob-store repository writes at the repository root (the same for the
# `fs` and `s3` types). `tests-*` are left-overs of repository verification.
_REPO_BLOB = re.compile(
    r"index-\d+|index\.latest|snap-[^/]+\.dat|meta-[^/]+\.dat|indices/.+|tests-[^/]+/.+"
    r"|incompatible-snapshots"
)

KeyKind = Literal["metadata", "metadata-checksum", "snapshot-repo", "drill-marker", "unknown"]


def _check_segment(what: str, value: str) -> None:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        raise ConfigError(what, f"{value!r} is not valid; expected {_SEGMENT_RULE}")


def _require_aware(at: datetime) -> datetime:
    # A naive datetime would silently mean "local time" and shift every name by the UTC offset.
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"timestamp must be timezone-aware (UTC), got naive {at.isoformat()}")
    return at.astimezone(UTC)


@dataclass(frozen=True, order=True)
class Tenant:
    """``org_id`` + ``namespace``: owns the repository prefix ``<org>/<ns>/`` and the indices its
    ``tenant_containers`` rows name (:class:`TenantIndices`).

    :attr:`index_prefix` is only how drdrill *names* the indices it creates. It never decides
    ownership: ``org1/ns1``'s prefix also begins ``org1/ns1-x``'s, and ``a-b``/``c`` and
    ``a``/``b-c`` share one; the repository name and prefix are injective.
    """

    org_id: str
    namespace: str

    def __post_init__(self) -> None:
        _check_segment("org_id", self.org_id)
        _check_segment("namespace", self.namespace)
        if self.org_id in _RESERVED_ORGS:
            raise ConfigError(
                "org_id", f"{self.org_id!r} is reserved by the bucket layout (metadata/, metadata/all/)"
            )

    @classmethod
    def parse(cls, text: str) -> Tenant:
        """``"org1/ns1"`` -> ``Tenant("org1", "ns1")``."""
        parts = text.split("/") if isinstance(text, str) else []
        if len(parts) != 2:
            raise ConfigError("tenant", f"{text!r} is not valid; expected '<org_id>/<namespace>'")
        return cls(parts[0], parts[1])

    @property
    def key(self) -> str:
        return f"{self.org_id}/{self.namespace}"

    @property
    def repo_prefix(self) -> str:
        """The Elasticsearch snapshot repository's ``base_path`` in the bucket, with a slash."""
        return f"{self.org_id}/{self.namespace}/"

    @property
    def repository_name(self) -> str:
        # '.' cannot occur in a segment, so this is injective (with '-' it would not be: see class
        # doc); two tenants sharing a repository name would re-point one at the other's prefix.
        return f"tenant-{self.org_id}.{self.namespace}"

    @property
    def index_prefix(self) -> str:
        return f"{self.org_id}-{self.namespace}-"

    def __str__(self) -> str:
        return self.key


def check_unambiguous(tenants: Iterable[Tenant]) -> None:
    """Refuse a tenant set in which drdrill's own index names would collide: ``a-b/c`` and
    ``a/b-c`` would both seed ``a-b-c-data-000``, one index for two tenants."""
    seen: dict[str, Tenant] = {}
    for tenant in tenants:
        other = seen.setdefault(tenant.index_prefix, tenant)
        if other != tenant:
            raise ConfigError("tenants", f"{other} and {tenant} are ambiguous: both name their indices "
                              f"{tenant.index_prefix}*", hint="drill one of them at a time")


class TenantIndices:
    """Which tenant owns which index: the platform's own mapping, the ``tenant_containers``
    rows ``(org_id, namespace, index_name)``. The one rule for "a tenant's indices" that
    backups, restores and verification share; an index claimed by two tenants is refused."""

    def __init__(self, rows: Iterable[tuple[str, str, str]]) -> None:
        self._owner: dict[str, Tenant] = {}
        self._indices: dict[Tenant, list[str]] = {}
        for org_id, namespace, index in rows:
            tenant = Tenant(org_id, namespace)
            owner = self._owner.setdefault(index, tenant)
            if owner != tenant:
                raise ConfigError("tenant_containers", f"index {index} is claimed by both {owner} and {tenant}",
                                  hint="one index belongs to one tenant; fix the rows before backing up")
            if index not in self._indices.setdefault(tenant, []):
                self._indices[tenant].append(index)

    def indices_of(self, tenant: Tenant) -> list[str]:
        return sorted(self._indices.get(tenant, []))

    def owner_of(self, index: str) -> Tenant | None:
        return self._owner.get(index)

    @property
    def tenants(self) -> list[Tenant]:
        return sorted(self._indices)

    def foreign(self, tenant: Tenant, indices: Iterable[str]) -> list[str]:
        """Of ``indices``, those another tenant owns."""
        return sorted(i for i in indices if (owner := self._owner.get(i)) is not None and owner != tenant)

    def to_rows(self) -> list[tuple[str, str, str]]:
        return [(t.org_id, t.namespace, i) for t in self.tenants for i in self.indices_of(t)]


# --- timestamps ------------------------------------------------------------------------------


def format_timestamp(at: datetime) -> str:
    """``20261124T020000Z``: UTC, second resolution (snapshot names; dumps of earlier releases)."""
    return _require_aware(at).strftime("%Y%m%dT%H%M%SZ")


def _datetime_from(date: str, time: str) -> datetime | None:
    try:
        return datetime(
            int(date[:4]), int(date[4:6]), int(date[6:]),
            int(time[:2]), int(time[2:4]), int(time[4:]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:  # e.g. month 13: not a timestamp, so not one of our names
        return None


def parse_timestamp(text: str) -> datetime | None:
    """Either ``YYYYMMDDTHHMMSSZ`` or the scripts' ``YYYYMMDD_HHMMSS`` (read as UTC); else None."""
    # Regexes with exact digit counts: strptime would accept e.g. one-digit months.
    match = _TS_ISO.fullmatch(text) or _TS_SCRIPT.fullmatch(text)
    return _datetime_from(match.group(1), match.group(2)) if match else None


# --- metadata dumps --------------------------------------------------------------------------


@dataclass(frozen=True)
class MetadataObject:
    scope: str  # "all" or an org_id
    taken_at: datetime
    key: str
    # Stamped in drdrill's earlier ISO form, which only drdrill wrote (a runbook-form name may be
    # the platform's own job's or drdrill's: only the object's tag tells).
    iso_naming: bool


def _check_scope(scope: str) -> None:
    if scope != ALL_SCOPE:
        _check_segment("org_id", scope)
        if scope in _RESERVED_ORGS:
            raise ConfigError("org_id", f"{scope!r} is reserved by the bucket layout")


def metadata_key(scope: str, at: datetime, *, iso_naming: bool = False) -> str:
    """Key of the dump of ``scope`` (``"all"`` or an org_id) taken at ``at``: the runbook's name
    (``metadata_backup_<scope>_<YYYYMMDD_HHMMSS>.sql.enc``, UTC), or with ``iso_naming`` the
    one drdrill's earlier releases wrote (``..._<YYYYMMDD>T<HHMMSS>Z.sql.enc``)."""
    _check_scope(scope)
    stamp = format_timestamp(at) if iso_naming else _require_aware(at).strftime("%Y%m%d_%H%M%S")
    return f"{METADATA_PREFIX}{scope}/metadata_backup_{scope}_{stamp}.sql.enc"


def parse_metadata_key(key: str) -> MetadataObject | None:
    """The dump a key names, or None if it does not follow the naming exactly."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != METADATA_PREFIX.rstrip("/"):
        return None
    scope, filename = parts[1], parts[2]
    if scope != ALL_SCOPE and (not _SEGMENT.fullmatch(scope) or scope in _RESERVED_ORGS):
        return None
    # The scope is known from the directory, so org ids containing '_' parse unambiguously.
    head, tail = f"metadata_backup_{scope}_", ".sql.enc"
    if not (filename.startswith(head) and filename.endswith(tail)):
        return None
    stamp = filename[len(head) : -len(tail)]
    taken_at = parse_timestamp(stamp)
    if taken_at is None:
        return None
    return MetadataObject(scope, taken_at, key, iso_naming=bool(_TS_ISO.fullmatch(stamp)))


def checksum_key(object_key: str) -> str:
    return object_key + CHECKSUM_SUFFIX


def checksum_record(hex_digest: str, object_key: str) -> str:
    """The checksum record's text, in ``sha256sum`` format so ``sha256sum -c`` can check it."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_digest):
        raise ValueError(f"not a SHA-256 hex digest: {hex_digest!r}")
    return f"{hex_digest.lower()}  {object_key.rsplit('/', 1)[-1]}\n"


def parse_checksum_record(text: str, object_key: str) -> str:
    """The lowercase hex digest in a record for ``object_key``; malformed -> BackupIntegrityError."""
    record_key = checksum_key(object_key)
    lines = [line for line in text.splitlines() if line.strip()]
    match = _SHA256_LINE.fullmatch(lines[0].strip()) if len(lines) == 1 else None
    if match is None:
        raise BackupIntegrityError(
            "checksum record is not one '<sha256 hex>  <file name>' line", key=record_key
        )
    basename = object_key.rsplit("/", 1)[-1]
    if match.group(2) != basename:
        # A record for another file (e.g. copied alongside the wrong dump) proves nothing.
        raise BackupIntegrityError(
            f"checksum record names {match.group(2)!r}, expected {basename!r}", key=record_key
        )
    return match.group(1).lower()


# --- snapshots -------------------------------------------------------------------------------


def snapshot_name(at: datetime) -> str:
    """drdrill's snapshot name, e.g. ``drdrill-20261124t020000z`` (lowercase, as ES requires)."""
    return SNAPSHOT_PREFIX + format_timestamp(at).lower()


def parse_snapshot_name(name: str) -> datetime | None:
    """When a drdrill snapshot was taken, or None if the name is not drdrill's."""
    match = _SNAPSHOT.fullmatch(name)
    return _datetime_from(match.group(1), match.group(2)) if match else None


# --- whole-bucket view -----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    kind: KeyKind
    scope: str | None = None  # "all"/org_id for metadata, "<org>/<ns>" for snapshot-repo
    tenant: Tenant | None = None


def classify_key(key: str) -> KeyInfo:
    if key == DRILL_MARKER_KEY:
        return KeyInfo("drill-marker")
    if key.endswith(CHECKSUM_SUFFIX):
        dump = parse_metadata_key(key[: -len(CHECKSUM_SUFFIX)])
        if dump is not None:
            return KeyInfo("metadata-checksum", dump.scope)
    dump = parse_metadata_key(key)
    if dump is not None:
        return KeyInfo("metadata", dump.scope)
    parts = key.split("/", 2)
    if len(parts) == 3 and _REPO_BLOB.fullmatch(parts[2]):
        try:
            tenant = Tenant(parts[0], parts[1])
        except ConfigError:
            return KeyInfo("unknown")
        return KeyInfo("snapshot-repo", tenant.key, tenant)
    return KeyInfo("unknown")


def _prefix_of(key: str) -> str:
    """The prefix a key is judged under: ``<top>/<second>/``, ``<top>/`` or the bare root key."""
    parts = key.split("/")
    if len(parts) >= 3:
        return f"{parts[0]}/{parts[1]}/"
    return f"{parts[0]}/" if len(parts) == 2 else key


def _prefix_problem(prefix: str) -> str:
    if not prefix.endswith("/"):
        return f"{prefix!r}: object at the bucket root; the platform's layout has none"
    if prefix.startswith(METADATA_PREFIX):
        return f"{prefix!r}: holds no dumps named metadata/<scope>/metadata_backup_<scope>_<ts>.sql.enc"
    if prefix.count("/") == 1:
        return f"{prefix!r}: objects directly under a top-level prefix; expected metadata/ or <org>/<ns>/"
    org, namespace = prefix.split("/")[:2]
    try:
        Tenant(org, namespace)
    except ConfigError as exc:
        return f"{prefix!r}: not a tenant prefix ({exc.one_line()})"
    return (
        f"{prefix!r}: not an Elasticsearch snapshot repository "
        "(no index-N, index.latest, snap-*.dat, meta-*.dat or indices/ blobs)"
    )


def validate_bucket_layout(keys: Iterable[str], *, max_problems: int = 20) -> list[str]:
    """One line per prefix that is not the platform's layout; [] if it is (or the bucket is empty).

    Judged per prefix, not per object: the point is to notice a wrong bucket before touching it,
    and a stray README beside a tenant's repository blobs does not make it the wrong bucket.
    """
    recognised: dict[str, bool] = {}  # prefix -> holds at least one object of the layout
    for key in keys:
        if key.endswith("/"):
            continue  # a "folder" marker some S3 consoles create: carries no data either way
        prefix = _prefix_of(key)
        recognised[prefix] = recognised.get(prefix, False) or classify_key(key).kind != "unknown"
    problems = [_prefix_problem(prefix) for prefix in sorted(p for p, ok in recognised.items() if not ok)]
    if len(problems) > max_problems:
        hidden = len(problems) - max_problems
        problems = [*problems[:max_problems], f"... and {hidden} more prefixes not in the platform's layout"]
    return problems


# --- untrusted names read from an environment ------------------------------------------------

# Elasticsearch's rules for an index name (MetadataCreateIndexService.validateIndexOrAliasName):
# lowercase, at most 255 bytes, none of these characters, not "." or "..", not starting with
# '-', '_' or '+'.
_INDEX_FORBIDDEN = frozenset('\\/*?"<>| ,#:')


def index_name_problem(name: object) -> str | None:
    """Why ``name`` (read from a repository or a table: untrusted) is not an Elasticsearch
    index name, or None when it is one."""
    if not isinstance(name, str) or not name:
        return "empty or not a string"
    if name != name.lower():
        return "has upper-case letters"
    if len(name.encode()) > 255:
        return "is longer than 255 bytes"
    bad = sorted({c for c in name if c in _INDEX_FORBIDDEN or ord(c) < 32})
    if bad:
        return "contains " + " ".join(repr(c) for c in bad)
    if name in (".", ".."):
        return "is . or .."
    if name[0] in "-_+":
        return f"starts with {name[0]!r}"
    return None


def blob_path_problem(relative: str) -> str | None:
    """Why an object key's part below a repository prefix (untrusted) cannot be a file under a
    local copy of the repository, or None. Only plain relative paths are: no absolute path, no
    ``..`` or ``.`` segment, no empty segment, no backslash or NUL."""
    if not relative or relative.startswith("/"):
        return "is empty or absolute"
    if "\\" in relative or "\x00" in relative:
        return "contains a backslash or NUL"
    if {"", ".", ".."} & set(relative.split("/")):
        return "has an empty, '.' or '..' segment"
    return None
