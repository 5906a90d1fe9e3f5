"""Copy an Elasticsearch blob-store repository between a local ``fs`` directory and its prefix
in the object store.

An ``fs`` and an ``s3`` repository share one blob layout, so a prefix written this way is a
valid ``s3`` repository and vice versa. Elasticsearch's data blobs are immutable and uniquely
named; only the root generation blobs (``index-N``, ``index.latest``) say which snapshots
exist. Publishing therefore uploads data blobs first and the root blobs last, ``index.latest``
very last: a reader that sees a new generation also finds every blob it references, so the
prefix is never a half-copied repository.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from drdrill.adapters.s3 import ObjectInfo, ObjectStore
from drdrill.core.layout import blob_path_problem
from drdrill.errors import BackupIntegrityError

T = TypeVar("T")

log = logging.getLogger(__name__)

_ROOT_GENERATION = re.compile(r"index-\d+")


@dataclass(frozen=True)
class SyncStats:
    objects: int
    bytes: int
    seconds: float
    skipped: int


def _publish_rank(relative: str) -> int:
    if relative == "index.latest":
        return 2
    if _ROOT_GENERATION.fullmatch(relative):
        return 1
    return 0


def _local_files(root: Path) -> dict[str, Path]:
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = Path(dirpath) / name
            files[full.relative_to(root).as_posix()] = full
    return files


def publish(store: ObjectStore, local_root: Path, prefix: str) -> SyncStats:
    """Upload what the object store does not have yet (by name and size); never delete.

    ``index.latest`` is rewritten in place by Elasticsearch, so it is always uploaded."""
    started = time.monotonic()
    remote = {o.key[len(prefix):]: o.size for o in store.list(prefix)}
    local = _local_files(local_root)
    todo = [rel for rel, path in local.items()
            if rel == "index.latest" or remote.get(rel) != path.stat().st_size]
    sent = 0
    # Rank by rank: every data blob is in the store before a root blob that names it.
    for rank in (0, 1, 2):
        batch = sorted(rel for rel in todo if _publish_rank(rel) == rank)
        _each(lambda rel: store.upload_file(local[rel], prefix + rel), batch)
        sent += sum(local[rel].stat().st_size for rel in batch)
    stats = SyncStats(len(todo), sent, time.monotonic() - started, len(local) - len(todo))
    log.info("published %d blobs (%d bytes) to %s in %.2fs", stats.objects, stats.bytes, prefix, stats.seconds)
    return stats


def fetch(store: ObjectStore, prefix: str, local_root: Path, *, owner: tuple[int, int] | None = None) -> SyncStats:
    """Download every blob under ``prefix`` into ``local_root`` (created if missing), owned by
    ``owner`` so that Elasticsearch (another user on the local target) can read and write it."""
    started = time.monotonic()
    local_root.mkdir(parents=True, exist_ok=True)
    _own(local_root, owner)
    todo, skipped = [], 0
    for obj in store.list(prefix):
        rel = obj.key[len(prefix):]
        if not rel or rel.endswith("/"):
            continue
        # A key is untrusted input: it names a file inside the copy, or the copy is refused.
        problem = blob_path_problem(rel)
        if problem is not None or not (local_root / rel).resolve().is_relative_to(local_root.resolve()):
            raise BackupIntegrityError(f"object {obj.key!r} cannot be a file of the repository copy: "
                                       f"{problem or 'it resolves outside it'}", key=obj.key,
                                       hint="a repository's blobs have plain relative names; this prefix holds "
                                            "something else")
        target = local_root / rel
        if target.exists() and target.stat().st_size == obj.size and rel != "index.latest":
            skipped += 1
            continue
        _make_dirs(target.parent, local_root, owner)
        todo.append((obj, target))

    def download(item: tuple[ObjectInfo, Path]) -> None:
        obj, target = item
        tmp = target.with_name(f".{target.name}.part")
        store.download_file(obj.key, tmp, size=obj.size)
        os.replace(tmp, target)
        _own(target, owner)

    _each(download, todo)
    stats = SyncStats(len(todo), sum(obj.size for obj, _ in todo), time.monotonic() - started, skipped)
    log.info("fetched %d blobs (%d bytes) from %s in %.2fs", stats.objects, stats.bytes, prefix, stats.seconds)
    return stats


# Objects copied at once: a repository is many small blobs, each a round trip.
COPY_THREADS = 8


def _each(action: Callable[[T], None], items: Sequence[T]) -> None:
    """``action`` on every item, :data:`COPY_THREADS` at a time; the first failure is raised."""
    if len(items) <= 1:
        for item in items:
            action(item)
        return
    with ThreadPoolExecutor(max_workers=min(COPY_THREADS, len(items)), thread_name_prefix="copy") as pool:
        for future in [pool.submit(action, item) for item in items]:
            future.result()


def local_blobs(local_root: Path) -> set[str]:
    return set(_local_files(local_root))


def remove_deleted(store: ObjectStore, local_root: Path, prefix: str, before: set[str]) -> list[str]:
    """Delete from the object store the blobs Elasticsearch deleted locally since ``before``
    (a :func:`local_blobs` listing taken right after :func:`fetch`). Only for retention of
    snapshots drdrill created. Objects that appeared in the store meanwhile (another writer)
    are not in ``before`` and so are never touched."""
    gone = sorted(before - local_blobs(local_root))
    if gone:
        store.delete([prefix + rel for rel in gone])
    return gone


def _own(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, *owner)


def _make_dirs(directory: Path, root: Path, owner: tuple[int, int] | None) -> None:
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for d in reversed(missing):
        d.mkdir()
        _own(d, owner)


def owner_of(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid
