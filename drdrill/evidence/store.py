"""Reading the evidence store back (layout: :mod:`drdrill.core.evidence_store`): the runs it
holds, newest first, and one run's pack. Only reads: the store's writes are the run's
(:mod:`drdrill.drill.publish`). What the store holds is untrusted: keys outside the layout are
skipped, reports that do not parse are listed as malformed, and a drill id is checked before it
becomes part of a key."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from drdrill.adapters.s3 import ObjectInfo, ObjectStore
from drdrill.core.evidence_store import (
    PACK_NAME,
    REPORT_NAME,
    RUNS_PREFIX,
    RunKey,
    StoredRun,
    malformed_run,
    newest_first,
    oversized,
    parse_run_key,
    read_run,
)
from drdrill.core.ownership import DRILL_ID
from drdrill.errors import UsageError


def _listing(store: ObjectStore) -> dict[str, dict[str, tuple[RunKey, ObjectInfo]]]:
    """prefix -> {report.json|pack.tar.gz: (key, object)} of every key of the layout."""
    runs: dict[str, dict[str, tuple[RunKey, ObjectInfo]]] = {}
    for info in store.list(RUNS_PREFIX):
        key = parse_run_key(info.key)
        if key is not None:
            runs.setdefault(key.prefix, {})[key.name] = (key, info)
    return runs


def list_runs(store: ObjectStore) -> list[StoredRun]:
    """Every run with a report.json, newest first (a pack without its report is an unfinished
    upload, not a run)."""
    out = []
    for objects in _listing(store).values():
        if REPORT_NAME not in objects:
            continue
        key, info = objects[REPORT_NAME]
        too_big = oversized(info.size)  # judged by the listing, before anything is read
        if too_big:
            out.append(malformed_run(key, PACK_NAME in objects, too_big))
            continue
        out.append(read_run(key, store.get_bytes(info.key), PACK_NAME in objects))
    return newest_first(out)


def fetch_pack(store: ObjectStore, drill_id: str, out: Path) -> str:
    """Download the pack of ``drill_id`` to ``out`` (never over a file; nothing left on failure);
    returns its key."""
    if not DRILL_ID.fullmatch(drill_id):
        raise UsageError(f"{drill_id!r} is not a drill id", hint="e.g. 20261202T020000Z-1a2b3c; "
                         "`drdrill history --config F` lists them")
    if out.exists():
        raise UsageError(f"{out} exists", hint="evidence packs are never overwritten")
    found = [objects[PACK_NAME] for objects in _listing(store).values()
             if PACK_NAME in objects and objects[PACK_NAME][0].drill_id == drill_id]
    if not found:
        raise UsageError(f"no pack of drill {drill_id} in the evidence store {store.bucket}",
                         hint="`drdrill history --config F` lists the stored runs")
    _key, info = sorted(found, key=lambda f: f[1].key)[-1]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        store.download_file(info.key, Path(tmp), size=info.size)
        os.link(tmp, out)  # fails if someone created ``out`` meanwhile: never overwrite
    finally:
        Path(tmp).unlink(missing_ok=True)
    return info.key
