"""The one definition of a complete recovery point, asked by backup, catalog, retention and
restore alike (pure: the callers bring what they read from Elasticsearch or the store).

* A **snapshot** is complete when Elasticsearch says SUCCESS and no shard failed. The
  repository's root blob records only the state (a snapshot with a failed shard is PARTIAL
  there), the snapshot API also the shard counts; whichever the caller has is checked.
* A **metadata dump** is complete when its object holds data and, if drdrill wrote it, its
  checksum record exists: drdrill writes the record last, so a missing one means the backup was
  interrupted. The platform's own dumps never have a record; they count as complete here and
  are proven (or not) by decryption and pg_dump's trailer, and the report says the record was
  missing.
* A **restore** of a snapshot is complete when every primary it restores has started and no
  copy of its indices is still unassigned or initialising (green); it has failed when a primary
  could not be recovered (Elasticsearch does not retry a failed restore); else it is pending.
  A primary lost with a node after its restore had finished (no copy left) is restored again
  from the same snapshot, once (:func:`restore_again`), and the report says so.
  Its replicas count: a recovery is done when the platform is green, not when it serves yellow.
* A **dump's content** is complete when it ends with the trailer its kind always ends with, as
  its final line: pg_dump's for the whole database, drdrill's export or pg_dump's for an
  organisation (told by the header). The restore holds the last bytes back from psql until this
  is known, so an incomplete dump is never committed.
* A dump that decrypts (valid padding) yet does **not begin as a dump** was decrypted with the
  wrong password: ``openssl enc`` has no password check and garbage ends in valid padding about
  once in 256 tries, so the start of the plaintext, not its end, tells (:func:`dump_kind`).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from typing import Literal

from drdrill.core.layout import ALL_SCOPE

SUCCESS = "SUCCESS"


def snapshot_is_complete(state: str, shards_failed: int = 0, shards_total: int | None = None) -> bool:
    return state == SUCCESS and shards_failed == 0 and (shards_total is None or shards_total > 0)


RestoreProgress = Literal["complete", "failed", "pending"]
# Why Elasticsearch left a shard copy unassigned when a recovery of it failed.
ALLOCATION_FAILED = "ALLOCATION_FAILED"


def restore_progress(copies: Iterable[tuple[bool, str, str | None]], expected_primaries: int) -> RestoreProgress:
    """From (primary, state, unassigned reason) of every shard copy of a restore's indices."""
    copies = list(copies)
    primaries = [(state, reason) for primary, state, reason in copies if primary]
    if any(state == "UNASSIGNED" and reason == ALLOCATION_FAILED for state, reason in primaries):
        return "failed"
    started = sum(1 for state, _ in primaries if state == "STARTED")
    if started >= expected_primaries > 0 and all(state == "STARTED" for _, state, _ in copies):
        return "complete"
    return "pending"


def primaries_started(copies: Iterable[tuple[bool, str, str | None]], expected_primaries: int) -> bool:
    """Every primary a restore expects has started (its replicas may still be recovering)."""
    return expected_primaries > 0 and sum(1 for primary, state, _ in copies
                                          if primary and state == "STARTED") >= expected_primaries


def unfinished_restore_recoveries(recoveries: Iterable[tuple[str, str, str]]) -> list[str]:
    """From (label, stage, type) of each recovery Elasticsearch reports for a restore's indices
    once every copy started: the ones that mean the restore is not done. A peer recovery still
    running then is a relocation (the cluster rebalancing, e.g. after a node left): the data is
    already whole on the started copies, so it is not the restore's; any other recovery (from
    the snapshot, the store) that is not DONE is."""
    return [f"{label} {stage}" for label, stage, kind in recoveries
            if stage.upper() != "DONE" and kind.upper() != "PEER"]


# An unassigned primary that waiting will not bring back: refused by every node ("no"), or with no
# copy of its data left in the cluster ("no_valid_shard_copy": a primary being restored was lost
# with its node; Elasticsearch itself says to restore the index again).
_PRIMARY_GONE = frozenset({"no", "no_valid_shard_copy"})


# Why Elasticsearch left a shard copy unassigned when the node holding it left the cluster.
NODE_LEFT = "NODE_LEFT"


def restore_again(can_allocate: str, unassigned_reason: str | None, *, restored_again: bool) -> bool:
    """An unassigned primary of a restore whose every copy went with a node that left (its
    restore had finished, its replica was not built yet): the snapshot still holds it, and
    Elasticsearch's own explanation says to restore the index again, which the restore does
    once. A primary lost again, or lost any other way, fails the restore."""
    return can_allocate == "no_valid_shard_copy" and unassigned_reason == NODE_LEFT and not restored_again


def primary_cannot_start(can_allocate: str) -> bool:
    """From ``_cluster/allocation/explain`` of an unassigned primary: it will never start."""
    return can_allocate in _PRIMARY_GONE


# Deciders whose NO no wait undoes: a copy may not share a node with another copy of its shard
# (same_shard), nor break forced allocation awareness. A replica refused by one of these on every
# node stays unassigned for ever (a cluster too small for its replicas); other refusals (a disk
# watermark, throttling, a primary not yet active) can pass.
PERMANENT_DECIDERS = frozenset({"same_shard", "awareness"})


def never_allocatable(can_allocate: str, refusals: Iterable[Iterable[str]]) -> bool:
    """From ``_cluster/allocation/explain``: its ``can_allocate`` and, per node, the deciders
    that said NO. True when every node refuses the copy for a reason waiting cannot change."""
    nodes = [set(node) for node in refusals]
    return can_allocate == "no" and bool(nodes) and all(node & PERMANENT_DECIDERS for node in nodes)


def dump_is_complete(size_bytes: int, *, has_checksum: bool, needs_checksum: bool) -> bool:
    """``needs_checksum``: drdrill wrote the dump, and writes its checksum record last, so without
    the record it is unfinished; the platform's own job writes none."""
    return size_bytes > 0 and (has_checksum or not needs_checksum)


# What a dump is told by (its start) and how a complete one ends (pg_dump's own trailer, and
# drdrill's per-organisation export).
DUMP_HEAD_BYTES = 512
DUMP_TAIL_BYTES = 4096
_PG_DUMP_HEADER = b"-- PostgreSQL database dump"
_PG_DUMP_OPENINGS = (b"--\n" + _PG_DUMP_HEADER, b"--\r\n" + _PG_DUMP_HEADER, _PG_DUMP_HEADER)
_PG_DUMP_TRAILER = b"-- PostgreSQL database dump complete"
_PG_CUSTOM_MAGIC = b"PGDMP"
_EXPORT_HEADER = b"-- drdrill per-organisation export"
_EXPORT_TRAILER = b"COMMIT;"
# Control characters no text dump holds raw (COPY escapes them); C1 too, as UTF-8 decodes them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")

DumpKind = Literal["pg_dump", "pg_dump_custom", "drdrill_export", "unknown_text", "not_a_dump"]


def dump_kind(head: bytes, scope: str) -> DumpKind:
    """What a decrypted dump is, from its first :data:`DUMP_HEAD_BYTES` (all of it if shorter).

    ``not_a_dump`` means the wrong password or key derivation: the whole database is always
    pg_dump's output, and an organisation's dump is pg_dump's, drdrill's export or, made by the
    platform's own script (e.g. ``psql -c "\\copy ..."``), text. Garbage is none of these: 512
    random bytes that happen to be clean UTF-8 are far rarer than any other failure."""
    if not head:
        # pg_dump always writes its header, so nothing at all is a dump cut short (or that
        # pg_dump failed); an organisation may have no rows. A wrong password yields nothing
        # only if a whole block decrypts to padding, a 2**-128 chance.
        return "pg_dump" if scope == ALL_SCOPE else "unknown_text"
    if _PG_DUMP_HEADER in head or _starts_as(head, *_PG_DUMP_OPENINGS):
        return "pg_dump"
    if _starts_as(head, _PG_CUSTOM_MAGIC):
        return "pg_dump_custom"
    if scope == ALL_SCOPE:
        return "not_a_dump"
    if _starts_as(head, _EXPORT_HEADER):
        return "drdrill_export"
    return "unknown_text" if _is_text(head) else "not_a_dump"


def _starts_as(head: bytes, *openings: bytes) -> bool:
    """Begins with one of ``openings``, or is all there is of the start of one (a short dump)."""
    return any(head.startswith(opening) or opening.startswith(head) for opening in openings)


def _is_text(head: bytes) -> bool:
    # Not final: the head may end inside a multibyte character, cut at DUMP_HEAD_BYTES.
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None


def dump_content_is_complete(head: bytes, tail: bytes, scope: str) -> bool | None:
    """From a plaintext dump's first :data:`DUMP_HEAD_BYTES` and last :data:`DUMP_TAIL_BYTES`:
    whether it ends as its kind always ends (never, if it is not a dump); None for a format
    without a known trailer (pg_dump's custom format, the platform's own per-organisation
    script)."""
    kind = dump_kind(head, scope)
    if kind == "not_a_dump":
        return False
    if kind == "pg_dump":
        trailer = _PG_DUMP_TRAILER
    elif kind == "drdrill_export":
        trailer = _EXPORT_TRAILER
    else:
        return None
    # After its trailer pg_dump writes a "--" comment line and, since the 2025 security
    # releases, an "\\unrestrict <key>" meta-command; neither is data.
    lines = [line.strip() for line in tail.splitlines()
             if line.strip() not in (b"", b"--") and not line.startswith(b"\\unrestrict")]
    return bool(lines) and lines[-1] == trailer
