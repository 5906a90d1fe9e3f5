"""The catalog reads recovery points from repository root blobs alone: ``index.latest`` (the
generation, 8 bytes big-endian) and ``index-N`` (JSON). Pure: blobs are literals or an
in-memory store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from drdrill.adapters.s3 import ObjectInfo
from drdrill.backups import catalog
from drdrill.backups.catalog import SnapshotEntry, parse_generation, parse_repository_data
from drdrill.core import layout
from drdrill.core.layout import Tenant
from drdrill.errors import BackupIntegrityError, ServiceError

# An index-0 blob exactly as Elasticsearch 9 wrote it (captured from a real `fs` repository).
REAL_INDEX_0 = (
    b'{"min_version":"7.12.0","uuid":"8Jk8GY3uTUKnMr5L-1baCw","cluster_id":"pIURoAI1SCmJP-3BVVe_dQ",'
    b'"snapshots":[{"name":"drdrill-20261124t013319z","uuid":"kl2_Ru7URq6Mlzx-AqaC5Q","state":1,'
    b'"index_metadata_lookup":{"U9MnXw9WR626SIrDGtybag":"BOOuePRhT9W43ZPcRMoULQ-_na_-1-2-1",'
    b'"9YaKc2HVSOGXAH5P9nlatQ":"Xv2dlmaxTEOTjm3PsPMUxQ-_na_-1-2-1"},"version":"8.11.0","index_version":9111000,'
    b'"start_time_millis":1795483999855,"end_time_millis":1795484000058,"slm_policy":""}],'
    b'"indices":{"oexp1-ns1-data-001":{"id":"U9MnXw9WR626SIrDGtybag","snapshots":["kl2_Ru7URq6Mlzx-AqaC5Q"],'
    b'"shard_generations":["uHV2Vvl7RVqW8_NT8FIjkQ"]},"oexp1-ns1-data-000":{"id":"9YaKc2HVSOGXAH5P9nlatQ",'
    b'"snapshots":["kl2_Ru7URq6Mlzx-AqaC5Q"],"shard_generations":["aUnaKSfHRgyyU-A3lujsCQ"]}},'
    b'"index_metadata_identifiers":{"BOOuePRhT9W43ZPcRMoULQ-_na_-1-2-1":"5bkvC6IBymxkIHdgn8ZV",'
    b'"Xv2dlmaxTEOTjm3PsPMUxQ-_na_-1-2-1":"5rkvC6IBymxkIHdgn8ZV"}}'
)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


NIGHT1 = datetime(2026, 11, 1, 2, 0, 1, 250000, tzinfo=UTC)
NIGHT2 = datetime(2026, 11, 2, 2, 0, 1, 500000, tzinfo=UTC)
NIGHT3 = datetime(2026, 11, 3, 2, 0, 2, tzinfo=UTC)


def _snapshot(name: str, uuid: str, state: int, start: datetime | None, seconds: int = 3) -> dict[str, object]:
    snap: dict[str, object] = {
        "name": name, "uuid": uuid, "state": state,
        "index_metadata_lookup": {}, "version": "8.11.0", "index_version": 9111000, "slm_policy": "",
    }
    if start is not None:
        snap["start_time_millis"] = _ms(start)
        snap["end_time_millis"] = _ms(start) + seconds * 1000
    return snap


def repository_data() -> dict[str, object]:
    """Three nights: SUCCESS, then PARTIAL (one index failed), then FAILED (nothing written).
    Listed out of time order, as nothing guarantees the order in the blob."""
    return {
        "min_version": "7.12.0", "uuid": "repo-uuid", "cluster_id": "cluster-uuid",
        "snapshots": [
            _snapshot("drdrill-20261102t020000z", "uuid-partial", 3, NIGHT2),
            _snapshot("drdrill-20261103t020000z", "uuid-failed", 2, NIGHT3),
            _snapshot("drdrill-20261101t020000z", "uuid-success", 1, NIGHT1),
        ],
        "indices": {
            "org1-ns1-data-001": {"id": "idx1", "snapshots": ["uuid-success"], "shard_generations": ["g1"]},
            "org1-ns1-data-000": {"id": "idx0", "snapshots": ["uuid-success", "uuid-partial"],
                                  "shard_generations": ["g0"]},
            "org1-ns1-data-002": {"id": "idx2", "snapshots": ["uuid-partial"], "shard_generations": ["g2"]},
        },
        "index_metadata_identifiers": {},
    }


# --- parse_repository_data -----------------------------------------------------------------


def test_real_elasticsearch_root_blob():
    assert parse_repository_data(REAL_INDEX_0) == [SnapshotEntry(
        name="drdrill-20261124t013319z", uuid="kl2_Ru7URq6Mlzx-AqaC5Q", state="SUCCESS",
        started_at=datetime(2026, 11, 24, 1, 33, 19, 855000, tzinfo=UTC),
        finished_at=datetime(2026, 11, 24, 1, 33, 20, 58000, tzinfo=UTC),
        indices=("oexp1-ns1-data-000", "oexp1-ns1-data-001"),
    )]


def test_states_times_and_indices_per_snapshot_oldest_first():
    entries = parse_repository_data(json.dumps(repository_data()).encode())
    assert entries == [
        SnapshotEntry("drdrill-20261101t020000z", "uuid-success", "SUCCESS", NIGHT1,
                      datetime(2026, 11, 1, 2, 0, 4, 250000, tzinfo=UTC), ("org1-ns1-data-000", "org1-ns1-data-001")),
        SnapshotEntry("drdrill-20261102t020000z", "uuid-partial", "PARTIAL", NIGHT2,
                      datetime(2026, 11, 2, 2, 0, 4, 500000, tzinfo=UTC), ("org1-ns1-data-000", "org1-ns1-data-002")),
        SnapshotEntry("drdrill-20261103t020000z", "uuid-failed", "FAILED", NIGHT3,
                      datetime(2026, 11, 3, 2, 0, 5, tzinfo=UTC), ()),
    ]
    assert [e.complete for e in entries] == [True, False, False]
    assert all(e.started_at.tzinfo is not None for e in entries if e.started_at)


def test_newest_complete_snapshot_skips_newer_partial_and_failed():
    entries = parse_repository_data(json.dumps(repository_data()).encode())
    newest = catalog.newest_complete_snapshot(entries)
    assert newest is not None and newest.uuid == "uuid-success"
    assert catalog.newest_complete_snapshot([e for e in entries if not e.complete]) is None
    assert catalog.newest_complete_snapshot([]) is None


@pytest.mark.parametrize(("state", "name"), [(0, "IN_PROGRESS"), (1, "SUCCESS"), (2, "FAILED"), (3, "PARTIAL"),
                                             (4, "INCOMPATIBLE")])
def test_every_elasticsearch_snapshot_state(state, name):
    data = {"snapshots": [_snapshot("s", "u", state, NIGHT1)], "indices": {}}
    [entry] = parse_repository_data(json.dumps(data).encode())
    assert entry.state == name
    assert entry.complete is (name == "SUCCESS")


def test_snapshot_without_times_sorts_first_and_has_none():
    data = repository_data()
    data["snapshots"].append(_snapshot("platform-manual", "uuid-untimed", 1, None))  # type: ignore[attr-defined]
    entries = parse_repository_data(json.dumps(data).encode())
    assert entries[0].name == "platform-manual"
    assert entries[0].started_at is None and entries[0].finished_at is None
    assert [e.uuid for e in entries[1:]] == ["uuid-success", "uuid-partial", "uuid-failed"]


@pytest.mark.parametrize("raw", [b"{}", b'{"snapshots": [], "indices": {}}'])
def test_empty_repository_has_no_snapshots(raw):
    assert parse_repository_data(raw) == []


@pytest.mark.parametrize("raw", [
    b"",
    b"{",
    REAL_INDEX_0[:-40],  # truncated upload
    b"\xff\xfe\x00",  # not text
    (1).to_bytes(8, "big"),  # index.latest's content mistaken for index-N
    b"<Error><Code>NoSuchKey</Code></Error>",
], ids=["empty", "brace", "truncated", "binary", "generation-bytes", "xml"])
def test_invalid_json_is_an_integrity_error(raw):
    with pytest.raises(BackupIntegrityError, match="not valid JSON"):
        parse_repository_data(raw)


@pytest.mark.parametrize("raw", [b"[]", b"null", b'{"snapshots": [1]}', b'{"indices": ["x"]}'])
def test_json_of_the_wrong_shape_is_an_integrity_error(raw):
    with pytest.raises(BackupIntegrityError):
        parse_repository_data(raw)


# --- parse_generation ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "generation"), [
    (bytes(8), 0),
    (b"\x00\x00\x00\x00\x00\x00\x00\x05", 5),
    (b"\x00\x00\x00\x00\x00\x00\x01\x00", 256),  # big-endian: little-endian would read 2**56
    ((2**40 + 3).to_bytes(8, "big"), 2**40 + 3),
])
def test_generation_is_8_bytes_big_endian(raw, generation):
    assert parse_generation(raw) == generation


@pytest.mark.parametrize("raw", [b"", b"\x05", bytes(7), bytes(9), b"5\n"])
def test_generation_of_the_wrong_length_is_an_integrity_error(raw):
    with pytest.raises(BackupIntegrityError, match=f"{len(raw)} bytes, expected 8"):
        parse_generation(raw)


# --- reading a bucket (in memory) ---------------------------------------------------------


class MemoryStore:
    """The part of ObjectStore the catalog uses."""

    def __init__(self, objects: dict[str, bytes], tags: dict[str, dict[str, str]] | None = None) -> None:
        self.objects = dict(objects)
        self.object_tags = dict(tags or {})

    def tags(self, key: str) -> dict[str, str]:
        return self.object_tags.get(key, {})

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield ObjectInfo(key, len(self.objects[key]), NIGHT1, "etag")

    def exists(self, key: str) -> bool:
        return key in self.objects

    def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise ServiceError(f"object store: get {key} failed: NoSuchKey")
        return self.objects[key]


TENANT = Tenant("org1", "ns1")


def _repo(generation: int, data: dict[str, object], *, latest: bool = True) -> dict[str, bytes]:
    objects = {f"org1/ns1/index-{generation}": json.dumps(data).encode(),
               "org1/ns1/indices/idx0/0/__blob": b"x" * 10}
    if latest:
        objects["org1/ns1/index.latest"] = generation.to_bytes(8, "big")
    return objects


def test_tenant_snapshots_follow_index_latest():
    old = {"snapshots": [_snapshot("old", "uuid-old", 1, NIGHT1)], "indices": {}}
    store = MemoryStore({**_repo(9, old, latest=False), **_repo(10, repository_data())})
    assert [e.uuid for e in catalog.tenant_snapshots(store, TENANT)] == ["uuid-success", "uuid-partial", "uuid-failed"]


def test_without_index_latest_the_numerically_highest_generation_wins():
    old = {"snapshots": [_snapshot("old", "uuid-old", 1, NIGHT1)], "indices": {}}
    store = MemoryStore({**_repo(9, old, latest=False), **_repo(10, repository_data(), latest=False)})
    # "index-9" > "index-10" as strings: a lexical max would pick the old generation.
    assert [e.uuid for e in catalog.tenant_snapshots(store, TENANT)] == ["uuid-success", "uuid-partial", "uuid-failed"]


def test_a_prefix_without_repository_has_no_snapshots():
    assert catalog.tenant_snapshots(MemoryStore({"org1/ns1/README": b"hi"}), TENANT) == []


def test_index_latest_naming_a_missing_generation_is_an_integrity_error():
    store = MemoryStore({"org1/ns1/index.latest": (4).to_bytes(8, "big")})
    with pytest.raises(BackupIntegrityError) as info:
        catalog.tenant_snapshots(store, TENANT)
    assert info.value.key == "org1/ns1/index-4"


def test_discover_tenants_and_metadata_entries():
    at = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    ours = layout.metadata_key("org1", at)
    unchecked = layout.metadata_key("all", at)
    platform_dump = "metadata/org1/metadata_backup_org1_20261031_020000.sql.enc"
    earlier_release = layout.metadata_key("all", at - timedelta(days=1), iso_naming=True)  # drdrill's old name
    store = MemoryStore({
        **_repo(1, repository_data()),
        "org2/ns7/index-0": b"{}",
        "metadata/all/index-3": b"{}",  # not a tenant
        "notes/readme/x": b"",
        ours: b"Salted__x", layout.checksum_key(ours): b"sum",
        unchecked: b"Salted__y",
        platform_dump: b"Salted__z",
        earlier_release: b"Salted__w",
        "metadata/org1/someone_elses_dump.sql.enc": b"?",
    }, tags={ours: {"created-by": "drdrill"}, unchecked: {"created-by": "drdrill"}})
    assert catalog.discover_tenants(store) == [Tenant("org1", "ns1"), Tenant("org2", "ns7")]
    entries = {e.key: e for e in catalog.metadata_entries(store)}
    assert set(entries) == {ours, unchecked, platform_dump, earlier_release}
    assert (entries[ours].has_checksum, entries[ours].complete, entries[ours].taken_at) == (True, True, at)
    # Named alike: drdrill's tag tells its unfinished dump from the platform's (which has no record).
    assert entries[unchecked].has_checksum is False and not entries[unchecked].complete
    assert entries[platform_dump].complete and not entries[platform_dump].needs_checksum
    # drdrill's earlier ISO name needs no tag to be known as drdrill's: without its record, unfinished.
    assert not entries[earlier_release].complete
    assert [e.key for e in catalog.metadata_entries(store, "org1")] == [platform_dump, ours]

    tagged = {(TENANT.key, "drdrill-20261101t020000z")}
    points = {p.name_or_key: p for p in catalog.recovery_points(store, [TENANT], tagged_snapshots=tagged)}
    assert points["drdrill-20261101t020000z"].taken_at == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)  # from the name
    assert points["drdrill-20261101t020000z"].created_by_drdrill
    # drdrill's naming without drdrill's tag: somebody else's, never deleted.
    assert points["drdrill-20261102t020000z"].complete is False
    assert not points["drdrill-20261102t020000z"].created_by_drdrill
    assert points[ours].created_by_drdrill and points[ours].complete
    assert points[ours].extra_keys == (layout.checksum_key(ours),)
    # drdrill's name and tag, but no checksum record: an interrupted drdrill backup.
    assert not points[unchecked].complete and points[unchecked].extra_keys == ()
    assert not points[platform_dump].created_by_drdrill and points[platform_dump].complete
    assert not points[earlier_release].created_by_drdrill  # untagged

    untagged = MemoryStore(store.objects)  # the same objects, nobody's tags
    assert not any(p.created_by_drdrill for p in catalog.recovery_points(untagged, [TENANT]))
