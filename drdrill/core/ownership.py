"""Who may write what on an environment: the one rule every adapter asks before it changes
anything (pure: no I/O).

A target drdrill started (local, containers, its own cluster, a live environment marked three
times over for destructive drills) is drdrill's to change: :data:`UNRESTRICTED`. Any other live
environment gets an :class:`OwnedOnly` policy: drdrill may create objects named with its run's
prefix, and write to or delete only what it created in this run or adopted as a marked leftover
of an earlier run of its own. Everything else is refused *before* the request is sent, whatever
step, fixture or custom code asked for it.

The adapters own the translation of their service's requests into :class:`Write` values (an
Elasticsearch endpoint, an S3 operation, a PostgreSQL database); this module only judges them.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Literal, Protocol

from drdrill.errors import UsageError

Service = Literal["elasticsearch", "postgres", "s3", "filesystem"]
Kind = Literal["index", "repository", "database", "object", "directory", "cluster", "request"]
Verb = Literal["create", "write", "delete"]


@dataclass(frozen=True)
class Write:
    """One change a request would make: ``verb`` on the ``kind`` named ``name``."""

    service: Service
    kind: Kind
    name: str
    verb: Verb
    # What was asked, in the service's words (an endpoint, an operation), for the message.
    request: str = ""
    # The bucket an S3 request names ("" elsewhere): the evidence store's policy judges by it.
    bucket: str = ""

    def describe(self) -> str:
        what = f"{self.kind} {self.name}" if self.name else self.kind
        via = f" ({self.request})" if self.request and self.request != self.name else ""
        return f"{self.service}: {self.verb} {what}{via}"


class RefusedWrite(UsageError):
    """A write the target does not allow: nothing was sent."""

    def __init__(self, write: Write, environment: str, why: str) -> None:
        super().__init__(
            f"refused on live environment {environment!r}: {write.describe()}: {why}",
            hint="on an environment drdrill did not start it creates and removes only objects of its own; "
                 "destructive drills need an environment marked as a drill environment (README, --target live)")
        self.write = write
        self.environment = environment


class WritePolicy(Protocol):
    def check(self, write: Write) -> None:
        """Return if ``write`` is allowed; raise :class:`RefusedWrite` if not."""
        ...

    def may_write_database(self, name: str) -> bool:
        """Whether connections to database ``name`` may write (else they are opened read only)."""
        ...


class _Unrestricted:
    def check(self, write: Write) -> None:
        return None

    def may_write_database(self, name: str) -> bool:
        return True

    def __repr__(self) -> str:
        return "UNRESTRICTED"


UNRESTRICTED: WritePolicy = _Unrestricted()


@dataclass(frozen=True)
class EvidenceBucketOnly:
    """The evidence store's client: it may create its own bucket (the one the settings name) and
    put objects into it; nothing else anywhere, and nothing is ever deleted (evidence is kept).
    The backup bucket can never be this bucket (the settings refuse it), so no write of the
    store's client can reach a backup."""

    bucket: str
    environment: str

    def check(self, write: Write) -> None:
        if write.service == "s3" and write.bucket == self.bucket and write.verb != "delete" and (
                write.kind == "object" or write.request == "CreateBucket"):
            return
        raise RefusedWrite(write, self.environment, f"the evidence store writes only new objects into its own "
                                                    f"bucket {self.bucket!r}")

    def may_write_database(self, name: str) -> bool:
        return False


# How a drill names what it creates on an environment it does not own.
INDEX_PREFIX = "drdrill-"
SCRATCH_DATABASE_PREFIX = "drdrill_scratch_"
RESTORE_COPIES_PREFIX = "drdrill-restore-"


def name_prefix(drill_id: str) -> str:
    """Indices and repositories a drill creates on a live cluster: ``drdrill-<drill id>-``."""
    return f"{INDEX_PREFIX}{drill_id.lower()}-"


def scratch_database_name(drill_id: str) -> str:
    """A database name no platform uses, unique per drill (PostgreSQL keeps 63 bytes)."""
    return SCRATCH_DATABASE_PREFIX + "".join(c if c.isalnum() else "_" for c in drill_id.lower())[:40]


def copies_directory_name(drill_id: str) -> str:
    return f"{RESTORE_COPIES_PREFIX}{drill_id}"


@dataclass
class OwnedOnly:
    """The policy of a live environment that is not a drill environment.

    ``create`` of an index, repository, database or directory is allowed when its name begins
    with this run's prefix for that kind; the name then counts as owned. ``write`` and
    ``delete`` are allowed on owned names only. ``granted`` databases (a scratch database the
    settings name) may be written and emptied, never dropped. Thread-safe: restores run in a
    pool."""

    environment: str
    drill_id: str
    granted_databases: frozenset[str] = frozenset()
    owned: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def prefix_for(self, kind: str) -> str | None:
        if kind in ("index", "repository"):
            return name_prefix(self.drill_id)
        if kind == "database":
            return scratch_database_name(self.drill_id)
        if kind == "directory":
            return copies_directory_name(self.drill_id)
        return None

    def adopt(self, kind: Kind, name: str) -> None:
        """A leftover of an earlier run of drdrill, whose mark was read: drdrill's to remove."""
        with self._lock:
            self.owned.add((kind, name))

    def owns(self, kind: str, name: str) -> bool:
        with self._lock:
            return (kind, name) in self.owned

    def check(self, write: Write) -> None:
        key = (write.kind, write.name)
        with self._lock:
            if key in self.owned:
                return
            prefix = self.prefix_for(write.kind)
            # The scratch database's and the copies directory's names are whole; indices and
            # repositories are the prefix and a name of their own.
            whole = write.kind in ("database", "directory")
            named = prefix is not None and (write.name == prefix or write.name.startswith(prefix + "/")
                                            if whole else write.name.startswith(prefix) and write.name != prefix)
            if write.verb == "create" and named and _plain_name(write.name, paths=write.kind == "directory"):
                self.owned.add(key)
                return
        if write.kind == "database" and write.name in self.granted_databases and write.verb != "delete":
            return
        if write.kind in ("cluster", "request", "object"):
            why = "drdrill never changes this on an environment it does not own"
        elif write.verb == "create":
            why = f"not named as this drill's ({self.prefix_for(write.kind)}…)"
        else:
            why = "not created by this drill, nor a marked leftover of an earlier one"
        raise RefusedWrite(write, self.environment, why)

    def may_write_database(self, name: str) -> bool:
        return self.owns("database", name) or name in self.granted_databases


# A comma makes a list and * ? make patterns in Elasticsearch's paths; the rest cannot be in
# any name drdrill creates.
_NOT_IN_NAMES = re.compile(r'[,*?\s\\"<>|#:\x00]')


def _plain_name(name: str, *, paths: bool) -> bool:
    """No list, pattern or path trick in a name drdrill claims (``x,*``, ``a/../b``); a slash
    only in a directory's path below the repository root."""
    if not name or _NOT_IN_NAMES.search(name) or ("/" in name and not paths):
        return False
    return not {"", ".", ".."} & set(name.split("/"))


# --- marks: how drdrill recognises what an earlier run of its own left ------------------------

DRILL_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
_PREFIXED = re.compile(r"drdrill-(\d{8}t\d{6}z-[0-9a-f]{6})-.+")
MARK_CREATOR = "drdrill"


@dataclass(frozen=True)
class Mark:
    """What drdrill writes on everything it creates on someone else's environment (an index's
    mapping ``_meta``, a database's ``COMMENT``, a file in a directory): which run made it."""

    drill_id: str
    started_at: str

    def to_dict(self) -> dict[str, str]:
        return {"created_by": MARK_CREATOR, "drill_id": self.drill_id, "started_at": self.started_at}

    def text(self) -> str:
        import json

        return json.dumps(self.to_dict(), sort_keys=True)


def read_mark(value: object) -> Mark | None:
    """A mark read back from an environment (untrusted): a dict or its JSON text, with
    drdrill's creator and a well-formed drill id; anything else is no mark."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or value.get("created_by") != MARK_CREATOR:
        return None
    drill_id, started = value.get("drill_id"), value.get("started_at")
    if not isinstance(drill_id, str) or not DRILL_ID.fullmatch(drill_id) or not isinstance(started, str):
        return None
    return Mark(drill_id, started[:40])


def drill_id_in_name(name: str) -> str | None:
    """The drill id in an index or repository name drdrill gave (``drdrill-<id lowercased>-…``),
    as the run spelt it; None for any other name."""
    found = _PREFIXED.fullmatch(name)
    if found is None:
        return None
    raw = found.group(1)
    return raw[:8] + "T" + raw[9:15] + "Z" + raw[16:]
