"""What a live environment holds, as far as a restore test could change it, and what earlier
runs of drdrill left in it.

"Left as found" compares what a restore test could alter: every bucket object (key + ETag),
repository registrations, databases, cluster settings, and the platform's indices' existence,
UUIDs, settings, mappings and aliases. Not the documents and rows the platform keeps writing:
a restore test runs while staging is busy.

Leftovers are what a killed run could not remove: drdrill's own indices, repositories, scratch
databases and repository copies. One is removed only when it carries drdrill's mark (the index
mapping's ``_meta``, the repository's name, the database's comment, a file in the directory)
from another run; the environment's lock (held by the caller) says no other run is alive.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drdrill.adapters.pg_owned import database_comments
from drdrill.adapters.platform import Platform
from drdrill.core.ownership import (
    INDEX_PREFIX,
    RESTORE_COPIES_PREFIX,
    SCRATCH_DATABASE_PREFIX,
    Mark,
    OwnedOnly,
    drill_id_in_name,
    read_mark,
)

log = logging.getLogger(__name__)

# The file that marks a directory of repository copies as drdrill's.
DIRECTORY_MARK = ".drdrill-mark.json"


@dataclass
class Fingerprint:
    """What "unchanged" means for a live environment."""

    indices: dict[str, str]  # name -> UUID, settings and mappings (JSON); hidden (.) indices aside
    aliases: dict[str, list[str]]
    repositories: dict[str, str]  # name -> type and settings, as JSON
    databases: list[str]
    cluster_settings: dict[str, str]  # "persistent.x" -> value
    objects: dict[str, str]  # bucket key -> ETag

    def differences(self, after: Fingerprint) -> list[str]:
        out: list[str] = []
        for what in ("indices", "aliases", "repositories", "cluster_settings", "objects"):
            before_map, after_map = getattr(self, what), getattr(after, what)
            gone = sorted(set(before_map) - set(after_map))
            changed = sorted(k for k in set(before_map) & set(after_map) if before_map[k] != after_map[k])
            out += [f"{what}: {k} is gone" for k in gone] + [f"{what}: {k} changed" for k in changed]
            # The platform may add indices, aliases and backups while the test runs; what a
            # restore test adds is named as drdrill's, and settings are never the platform's traffic.
            new = sorted(k for k in set(after_map) - set(before_map)
                         if what in ("repositories", "cluster_settings") or k.startswith(INDEX_PREFIX))
            out += [f"{what}: {k} appeared" for k in new]
        out += [f"databases: {d} is gone" for d in sorted(set(self.databases) - set(after.databases))]
        out += [f"databases: {d} appeared" for d in sorted(set(after.databases) - set(self.databases))]
        return out


def fingerprint(platform: Platform) -> Fingerprint:
    cluster = platform.cluster
    names = sorted(n for n in cluster.indices("*") if not n.startswith("."))
    settings = cluster.cluster_settings()
    return Fingerprint(
        indices=cluster.index_identities(names),
        aliases={alias: idx for alias, idx in cluster.aliases().items() if not alias.startswith(".")},
        repositories={name: json.dumps(body, sort_keys=True) for name, body in cluster.repositories().items()},
        databases=platform.db.databases(),
        cluster_settings={f"{scope}.{k}": json.dumps(v) for scope, values in settings.items()
                          for k, v in values.items()},
        objects={o.key: o.etag for o in platform.store.list("")},
    )


@dataclass
class Leftovers:
    """What a run found of earlier, killed runs: removed (marked, another run's), or left in
    place (drdrill's name but no mark: a person must look), and removals that failed."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {"removed": self.removed, "left_in_place": self.kept, "could_not_remove": self.failed}

    def __bool__(self) -> bool:
        return bool(self.removed or self.kept or self.failed)


def clear_leftovers(platform: Platform, policy: OwnedOnly, repo_root: Path | None) -> Leftovers:
    """Find what earlier runs of drdrill left and remove what carries their mark. The caller
    holds the environment's lock: no other run is alive to own any of it."""
    found = Leftovers()
    own = policy.drill_id

    def remove(kind: str, name: str, action: Any, *args: Any) -> None:
        try:
            action(*args)
            found.removed.append(f"{kind} {name}")
        except Exception as exc:  # one leftover must not keep the others in place
            found.failed.append(f"{kind} {name}: {exc}")

    for index, raw in sorted(platform.cluster.index_marks(INDEX_PREFIX + "*").items()):
        mark = read_mark(raw)
        if mark is None or drill_id_in_name(index) != mark.drill_id:
            found.kept.append(f"index {index}: named as drdrill's but without its mark")
        elif mark.drill_id != own:
            policy.adopt("index", index)
            remove("index", index, platform.cluster.delete_indices, index)
    for repository in sorted(platform.cluster.repositories()):
        drill_id = drill_id_in_name(repository)
        if drill_id is not None and drill_id != own:
            policy.adopt("repository", repository)
            remove("repository", repository, platform.cluster.delete_repository, repository)
    for database, comment in sorted(database_comments(platform.db, SCRATCH_DATABASE_PREFIX).items()):
        mark = read_mark(comment)
        if mark is None:
            found.kept.append(f"database {database}: named as drdrill's but without its mark")
        elif mark.drill_id != own:
            policy.adopt("database", database)
            remove("database", database, platform.db.drop_database, platform.db.conn, database)
    if repo_root is not None and repo_root.is_dir():
        for directory in sorted(repo_root.glob(RESTORE_COPIES_PREFIX + "*")):
            mark = _directory_mark(directory)
            if mark is None:
                found.kept.append(f"directory {directory}: named as drdrill's but without its mark")
            elif mark.drill_id != own:
                remove("directory", str(directory), shutil.rmtree, directory)
    if found:
        log.info("leftovers of earlier runs: %s", json.dumps(found.to_dict()))
    return found


def mark_directory(directory: Path, mark: Mark) -> None:
    (directory / DIRECTORY_MARK).write_text(mark.text() + "\n")


def _directory_mark(directory: Path) -> Mark | None:
    path = directory / DIRECTORY_MARK
    if directory.is_symlink() or not directory.is_dir() or not path.is_file() or path.is_symlink():
        return None
    try:
        return read_mark(path.read_text()[:4096])
    except (OSError, UnicodeDecodeError):
        return None
