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
"""

from __future__ import annotations

SUCCESS = "SUCCESS"


def snapshot_is_complete(state: str, shards_failed: int = 0, shards_total: int | None = None) -> bool:
    return state == SUCCESS and shards_failed == 0 and (shards_total is None or shards_total > 0)


def dump_is_complete(size_bytes: int, *, has_checksum: bool, drdrill_naming: bool) -> bool:
    return size_bytes > 0 and (has_checksum or not drdrill_naming)
