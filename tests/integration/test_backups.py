"""The reference backup procedure on the real local stack: what lands where in MinIO, that each
tenant's prefix is a repository a fresh Elasticsearch restores from, that encrypted dumps are
interoperable with openssl and psql, retention over a simulated fortnight, and the CLI.

Every test works on its own tenants (unique org ids); the bucket, cluster and database are
shared with other tests, so bucket checks diff listings taken around the operation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from drdrill.adapters import crypto
from drdrill.adapters.platform import Endpoints, Platform
from drdrill.adapters.postgres import TENANT_TABLE
from drdrill.adapters.s3 import ObjectStore
from drdrill.backups import catalog, repo_sync
from drdrill.backups.prune import apply_retention, drdrill_snapshots
from drdrill.backups.seed import documents, index_names, seed_tenant
from drdrill.backups.take import (
    SnapshotBackup,
    backup_metadata,
    backup_repository_location,
    backup_set,
    backup_snapshot,
    register_backup_repository,
)
from drdrill.core import layout
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.core.retention import RecoveryPoint, plan_retention
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import DataSpec

pytestmark = [pytest.mark.integration, pytest.mark.es_matrix]

SPEC = DataSpec(indices_per_tenant=2, docs_per_index=200)
# A space and a non-ASCII character: openssl must derive the key from exactly the same bytes.
PASSWORD = "dump pass-phrase é".encode()
PASSWORD_ENV = "DRDRILL_TEST_DUMP_PASSWORD"
TIMEOUT_S = 300.0

Listing = dict[str, tuple[str, int]]


# --- helpers -------------------------------------------------------------------------------

_issued: list[datetime] = []


def fresh_at() -> datetime:
    """"Now" at second resolution (the names' resolution), never the same second twice in this
    session: two backups in one second would share their metadata dump keys."""
    at = datetime.now(UTC).replace(microsecond=0)
    if _issued and at <= _issued[-1]:
        at = _issued[-1] + timedelta(seconds=1)
    _issued.append(at)
    return at


def nightly(days_ago: int) -> datetime:
    """02:00 UTC (the nightly job's slot), ``days_ago`` days before today."""
    return (datetime.now(UTC) - timedelta(days=days_ago)).replace(hour=2, minute=0, second=0, microsecond=0)


def new_store(ep: Endpoints) -> ObjectStore:
    """A client of its own: what MinIO holds, not anything cached in the platform's client."""
    return ObjectStore(ep.s3_endpoint, ep.s3_access_key, ep.s3_secret_key, ep.bucket)


def listing(store: ObjectStore, prefix: str = "") -> Listing:
    return {o.key: (o.etag, o.size) for o in store.list(prefix)}


def add_documents(platform: Platform, index: str, night: int, count: int) -> None:
    operations: list[dict[str, object]] = []
    for n in range(count):
        operations += [{"index": {"_index": index, "_id": f"night{night}-{n}"}}, {"night": night, "seq": n}]
    result = platform.cluster.client.bulk(operations=operations, refresh=True)
    assert not result["errors"], result


def snapshot(platform: Platform, tenant: Tenant, at: datetime) -> SnapshotBackup:
    """The tenant's snapshot, its indices by the platform's own rows."""
    return backup_snapshot(platform, tenant, at, TenantIndices(platform.db.containers_index_names()))


def points_of(platform: Platform, tenant: Tenant) -> list[RecoveryPoint]:
    """The tenant's recovery points, drdrill's known by their tags (as ``backups prune`` reads them)."""
    tagged = {(tenant.key, name) for name in drdrill_snapshots(platform, tenant)}
    return [p for p in catalog.recovery_points(platform.store, [tenant], tagged_snapshots=tagged)
            if in_scope(p, tenant)]


def deletions(plan) -> tuple[list[tuple[str, str]], list[str]]:
    """(snapshots as (tenant, name), object keys) that a retention plan deletes."""
    return (sorted((p.scope, p.name_or_key) for p in plan.delete if p.kind == "snapshot"),
            sorted(k for p in plan.delete for k in p.object_keys))


def in_scope(point: RecoveryPoint, tenant: Tenant) -> bool:
    """Only this tenant's snapshots and its organisation's dumps: the bucket is shared."""
    if point.kind == "snapshot":
        return point.scope == tenant.key
    return point.scope == tenant.org_id


def delete_tenant_indices(platform: Platform, tenant: Tenant) -> None:
    """By name: Elasticsearch refuses wildcard deletes (action.destructive_requires_name)."""
    names = sorted(platform.cluster.indices(f"{tenant.index_prefix}*"))
    if names:
        platform.cluster.delete_indices(",".join(names))
    assert platform.cluster.indices(f"{tenant.index_prefix}*") == {}


def restore_from_store(platform: Platform, tenant: Tenant, snapshot: str, expected: dict[str, int]) -> None:
    """Drop the tenant's indices and the local copy of its repository, then restore
    ``snapshot`` from what a fresh fetch from MinIO brings back."""
    indices = sorted(expected)
    delete_tenant_indices(platform, tenant)
    platform.cluster.delete_repository(tenant.repository_name)
    shutil.rmtree(backup_repository_location(platform, tenant))
    repository = register_backup_repository(platform, tenant)
    summary = platform.cluster.restore(repository, snapshot, indices, TIMEOUT_S)
    assert summary["shards"]["failed"] == 0 and summary["shards"]["successful"] == len(indices), summary
    ok, status = platform.cluster.wait_for_green(indices, TIMEOUT_S)
    assert ok, status
    assert {index: platform.cluster.count(index) for index in indices} == expected


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    return subprocess.run([sys.executable, "-m", "drdrill", *args], capture_output=True, text=True, env=env,
                          timeout=600, check=False)


def pg_client(tool: str) -> str:
    bindir = find_pg_bindir()
    if bindir is not None and (bindir / tool).exists():
        return str(bindir / tool)
    found = shutil.which(tool)
    assert found, f"{tool} is not installed"
    return found


def psql_file(ep: Endpoints, database: str, path: Path) -> None:
    """The runbook's restore (``psql < dump``) as the platform's database user, stopping at the
    first error so that a half-applied dump fails the test."""
    result = subprocess.run(
        [pg_client("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", ep.pg_host, "-p", str(ep.pg_port),
         "-U", ep.pg_user, "-d", database, "-f", str(path)],
        env={**os.environ, "PGPASSWORD": ep.pg_password}, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr


def openssl_decrypt(src: Path, dst: Path, kdf_args: list[str]) -> None:
    """The independent reference: the openssl command line, password from the environment."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    result = subprocess.run(
        [openssl, "enc", "-d", "-aes-256-cbc", "-salt", *kdf_args, "-pass", f"env:{PASSWORD_ENV}",
         "-in", str(src), "-out", str(dst)],
        env={**os.environ, PASSWORD_ENV: os.fsdecode(PASSWORD)}, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def download_verified(store: ObjectStore, key: str, directory: Path) -> Path:
    """Download a dump and check it against its checksum record, by hashlib and by sha256sum."""
    path = directory / key.rsplit("/", 1)[-1]
    store.download_file(key, path)
    record = store.get_bytes(layout.checksum_key(key)).decode()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert record == f"{digest}  {path.name}\n"
    record_path = directory / f"{path.name}.sha256"
    record_path.write_text(record)
    check = subprocess.run(["sha256sum", "-c", record_path.name], cwd=directory, capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    return path


def db_connect(ep: Endpoints, database: str) -> psycopg.Connection:
    return psycopg.connect(host=ep.pg_host, port=ep.pg_port, dbname=database, user=ep.pg_user,
                           password=ep.pg_password, autocommit=True, connect_timeout=10)


def row_counts(ep: Endpoints, database: str) -> dict[tuple[str, str], int]:
    with db_connect(ep, database) as conn:
        rows = conn.execute(
            f"SELECT org_id, namespace, count(*) FROM {TENANT_TABLE} GROUP BY 1, 2"
        ).fetchall()
    return {(org, ns): int(n) for org, ns, n in rows}


def rows(ep: Endpoints, database: str, org_id: str, *, other_orgs: bool = False) -> list[tuple[object, ...]]:
    """Whole rows (ids and timestamps included) of one organisation, or of every other one."""
    operator = "<>" if other_orgs else "="
    with db_connect(ep, database) as conn:
        return [tuple(r) for r in conn.execute(
            f"SELECT id, org_id, namespace, container_name, index_name, doc_count, created_at "
            f"FROM {TENANT_TABLE} WHERE org_id {operator} %s ORDER BY id", (org_id,)).fetchall()]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def seed(platform: Platform) -> Iterator[Callable[[Tenant], dict[str, int]]]:
    """Seed a tenant (indices + tenant_containers rows). Afterwards its indices, rows and
    repository registration go again; its backups stay in the store, as real ones would."""
    seeded: list[Tenant] = []

    def _seed(tenant: Tenant) -> dict[str, int]:
        seeded.append(tenant)
        result = seed_tenant(platform.cluster, platform.db, tenant, SPEC)
        assert result.docs_by_index == dict.fromkeys(index_names(tenant, SPEC), SPEC.docs_per_index)
        return dict(result.docs_by_index)

    yield _seed
    for tenant in seeded:
        delete_tenant_indices(platform, tenant)
        platform.cluster.delete_repository(tenant.repository_name)
        platform.db.delete_tenant_rows(tenant.org_id, tenant.namespace)


@pytest.fixture
def scratch_db(endpoints: Endpoints) -> Iterator[Callable[[str], str]]:
    """Create empty databases owned by the platform's user (as the runbook's restore target);
    drop them afterwards."""
    created: list[str] = []

    def _create(name: str) -> str:
        with psycopg.connect(endpoints.pg_admin_dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                         sql.Identifier(endpoints.pg_user)))
        created.append(name)
        return name

    yield _create
    with psycopg.connect(endpoints.pg_admin_dsn(), autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- 1. what a backup set writes, and where ------------------------------------------------


def test_backup_set_writes_only_under_its_tenants_and_metadata_prefixes(platform, seed, unique, endpoints):
    org_a, org_b = f"o{unique}a", f"o{unique}b"
    tenants = [Tenant(org_a, "ns1"), Tenant(org_a, "ns2"), Tenant(org_b, "ns1")]
    seeded = {tenant: seed(tenant) for tenant in tenants}

    before = listing(platform.store)
    at = fresh_at()
    result = backup_set(platform, tenants, at, PASSWORD)
    after = listing(platform.store)

    # Nothing that existed was removed or rewritten; everything new is in the layout's places.
    assert {key: after.get(key) for key in before} == before
    new = set(after) - set(before)
    allowed = (*(t.repo_prefix for t in tenants), "metadata/all/", f"metadata/{org_a}/", f"metadata/{org_b}/")
    assert sorted(key for key in new if not key.startswith(allowed)) == []

    # Snapshots: complete, non-empty, one repository per tenant made only of repository blobs.
    assert [s.tenant for s in result.snapshots] == [t.key for t in tenants]
    assert len({s.uuid for s in result.snapshots}) == len(tenants)
    store = new_store(endpoints)
    for tenant, snap in zip(tenants, result.snapshots, strict=True):
        assert (snap.state, snap.shards_failed, snap.complete) == ("SUCCESS", 0, True)
        assert snap.size_bytes > 0 and snap.upload_objects > 0
        assert snap.snapshot == layout.snapshot_name(at)
        assert snap.indices == tuple(sorted(seeded[tenant]))
        mine = {key for key in new if key.startswith(tenant.repo_prefix)}
        assert {f"{tenant.repo_prefix}index.latest", f"{tenant.repo_prefix}snap-{snap.uuid}.dat"} <= mine
        assert {layout.classify_key(key) for key in mine} == {layout.KeyInfo("snapshot-repo", tenant.key, tenant)}
        # The catalog, from the object store alone (no Elasticsearch involved).
        assert [(e.name, e.uuid, e.state, e.indices) for e in catalog.tenant_snapshots(store, tenant)] == [
            (snap.snapshot, snap.uuid, "SUCCESS", snap.indices)]
    assert set(tenants) <= set(catalog.discover_tenants(store))

    # Metadata: the whole-database dump and one per organisation, each with its checksum record.
    dump_keys = {layout.metadata_key(scope, at) for scope in ("all", org_a, org_b)}
    assert {m.key for m in result.metadata} == dump_keys
    checksum_keys = {layout.checksum_key(k) for k in dump_keys}
    assert {key for key in new if key.startswith("metadata/")} == dump_keys | checksum_keys
    for dump in result.metadata:
        [entry] = [e for e in catalog.metadata_entries(store, dump.scope) if e.key == dump.key]
        assert (entry.scope, entry.taken_at, entry.size) == (dump.scope, at, dump.size_bytes)
        # The runbook's name (YYYYMMDD_HHMMSS), drdrill's record beside it.
        assert entry.has_checksum and entry.complete and not entry.iso_naming
        body = store.get_bytes(dump.key)
        assert body.startswith(crypto.MAGIC)
        assert hashlib.sha256(body).hexdigest() == dump.sha256
        assert layout.parse_checksum_record(store.get_bytes(dump.checksum_key).decode(), dump.key) == dump.sha256


# --- 2. a tenant's prefix is a repository a fresh cluster restores from -----------------------


def test_each_tenant_prefix_restores_on_a_fresh_cluster_from_minio_alone(platform, seed, unique, fresh_endpoints):
    tenants = [Tenant(f"o{unique}", "ns1"), Tenant(f"o{unique}", "ns2")]
    seeded = {tenant: seed(tenant) for tenant in tenants}
    at = fresh_at()
    snaps = {tenant: snapshot(platform, tenant, at) for tenant in tenants}

    fresh = Platform.from_endpoints(fresh_endpoints, pg_bindir=find_pg_bindir())
    try:
        assert fresh.cluster.indices(f"o{unique}-*") == {}
        root = fresh_endpoints.es_repo_root
        assert root is not None
        for tenant in tenants:
            location = root / "restore-test" / tenant.org_id / tenant.namespace
            assert not location.exists()
            stats = repo_sync.fetch(platform.store, tenant.repo_prefix, location, owner=repo_sync.owner_of(root))
            assert stats.objects == len(listing(platform.store, tenant.repo_prefix)) > 0
            repository = f"restore-test-{tenant.org_id}.{tenant.namespace}"
            fresh.cluster.register_fs_repository(repository, str(location), readonly=True)
            assert [(s.name, s.uuid, s.state) for s in fresh.cluster.snapshots(repository)] == [
                (snaps[tenant].snapshot, snaps[tenant].uuid, "SUCCESS")]

            indices = sorted(seeded[tenant])
            summary = fresh.cluster.restore(repository, snaps[tenant].snapshot, indices, TIMEOUT_S)
            assert summary["shards"]["failed"] == 0 and summary["shards"]["successful"] == len(indices), summary
            ok, status = fresh.cluster.wait_for_green(indices, TIMEOUT_S)
            assert ok, status
            assert {index: fresh.cluster.count(index) for index in indices} == seeded[tenant]
            # The documents themselves, not only how many: the seed is deterministic.
            last = list(documents(indices[-1], SPEC.docs_per_index, SPEC.seed))[-1]
            assert fresh.cluster.client.get(index=indices[-1], id=last["_id"])["_source"] == last["_source"]
        # Only what was asked for came across.
        assert set(fresh.cluster.indices(f"o{unique}-*")) == {i for t in tenants for i in seeded[t]}
    finally:
        fresh.close()


# --- 3. dumps decrypt with openssl and restore with psql --------------------------------------


KDFS = [
    pytest.param(crypto.RUNBOOK_DEFAULT, [], id="runbook-default"),
    pytest.param(crypto.KdfSpec(pbkdf2=True), ["-pbkdf2"], id="pbkdf2"),
]


@pytest.mark.parametrize(("kdf", "openssl_args"), KDFS)
def test_metadata_dumps_restore_with_openssl_and_psql(platform, seed, unique, endpoints, scratch_db, tmp_path,
                                                      kdf, openssl_args):
    org_a, org_b = f"o{unique}a", f"o{unique}b"
    tenants = [Tenant(org_a, "ns1"), Tenant(org_a, "ns2"), Tenant(org_b, "ns1")]
    for tenant in tenants:
        seed(tenant)
    source_before = platform.db.row_counts()
    result = backup_set(platform, tenants, fresh_at(), PASSWORD, snapshots=False, kdf=kdf)
    source = platform.db.row_counts()
    assert source == source_before, "the source changed during the dump: cannot tell what it holds"
    assert all(source[(t.org_id, t.namespace)] == SPEC.indices_per_tenant for t in tenants)
    assert [m.kdf for m in result.metadata] == [kdf.describe()] * 3
    dumps = {m.scope: m.key for m in result.metadata}
    assert set(dumps) == {"all", org_a, org_b}

    # The whole-database dump into a fresh database.
    plain_all = tmp_path / "all.sql"
    openssl_decrypt(download_verified(platform.store, dumps["all"], tmp_path), plain_all, openssl_args)
    database = scratch_db(f"drt_{unique}_all")
    psql_file(endpoints, database, plain_all)
    assert row_counts(endpoints, database) == source

    # One organisation's dump into a database that already has the schema: it replaces that
    # organisation's rows and touches no other. Make both organisations differ first.
    source_rows_a = rows(endpoints, endpoints.pg_database, org_a)
    assert len(source_rows_a) == 2 * SPEC.indices_per_tenant
    with db_connect(endpoints, database) as conn:
        conn.execute(f"DELETE FROM {TENANT_TABLE} WHERE org_id = %s AND namespace = 'ns1'", (org_a,))
        conn.execute(f"UPDATE {TENANT_TABLE} SET doc_count = -1 WHERE org_id = %s", (org_a,))
        for org in (org_a, org_b):
            conn.execute(f"INSERT INTO {TENANT_TABLE} (org_id, namespace, container_name, index_name) "
                         "VALUES (%s, 'ns9', 'later', %s)", (org, f"{org}-ns9-later"))
        conn.execute(f"UPDATE {TENANT_TABLE} SET doc_count = 7 WHERE org_id = %s", (org_b,))
    assert rows(endpoints, database, org_a) != source_rows_a
    others_before = rows(endpoints, database, org_a, other_orgs=True)
    assert {r[1] for r in others_before} >= {org_b}

    plain_a = tmp_path / "org_a.sql"
    openssl_decrypt(download_verified(platform.store, dumps[org_a], tmp_path), plain_a, openssl_args)
    psql_file(endpoints, database, plain_a)
    assert rows(endpoints, database, org_a) == source_rows_a
    assert rows(endpoints, database, org_a, other_orgs=True) == others_before


# --- 4. retention on the real store and cluster -----------------------------------------------


def _nightly_backups(platform: Platform, tenant: Tenant, counts: dict[str, int], nights: list[datetime]):
    """One snapshot and one organisation dump per night; the data grows between nights."""
    growing = index_names(tenant, SPEC)[0]
    snaps: dict[datetime, SnapshotBackup] = {}
    dump_keys: dict[datetime, tuple[str, str]] = {}
    expected: dict[datetime, dict[str, int]] = {}
    for number, at in enumerate(nights, 1):
        add_documents(platform, growing, number, 5)
        counts[growing] += 5
        snaps[at] = snapshot(platform, tenant, at)
        assert snaps[at].complete and snaps[at].snapshot == layout.snapshot_name(at)
        dump = backup_metadata(platform, tenant.org_id, PASSWORD, at)
        dump_keys[at] = (dump.key, dump.checksum_key)
        expected[at] = dict(counts)
    return snaps, dump_keys, expected


def test_retention_over_a_simulated_fortnight_on_the_real_store(platform, seed, unique, endpoints):
    tenant = Tenant(f"o{unique}", "ns1")
    counts = seed(tenant)
    base = nightly(15)
    nights = [base + timedelta(days=n) for n in range(1, 15)]
    snaps, dump_keys, expected = _nightly_backups(platform, tenant, counts, nights)
    old, recent = nights[:7], nights[7:]

    # Objects that are not drdrill's: one not named as a dump at all, one in the platform
    # scripts' naming (complete, with its checksum record, and older than everything).
    org_prefix = f"metadata/{tenant.org_id}/"
    platform_dump = f"{org_prefix}metadata_backup_{tenant.org_id}_20200101_020000.sql.enc"
    platform_body = b"Salted__" + bytes(range(8)) + bytes(32)
    foreign = {
        f"{org_prefix}someone_elses_dump.sql.enc": b"not ours",
        platform_dump: platform_body,
        layout.checksum_key(platform_dump): layout.checksum_record(
            hashlib.sha256(platform_body).hexdigest(), platform_dump).encode(),
    }
    for key, body in foreign.items():
        platform.store.put_bytes(key, body)
    foreign_listed = {k: v for k, v in listing(platform.store, org_prefix).items() if k in foreign}
    assert set(foreign_listed) == set(foreign)

    points = points_of(platform, tenant)
    assert sorted(p.name_or_key for p in points if p.kind == "snapshot") == [layout.snapshot_name(at) for at in nights]
    assert sorted(p.name_or_key for p in points if p.kind == "metadata") == sorted(
        [dump_keys[at][0] for at in nights] + [platform_dump])
    assert [p.created_by_drdrill for p in points if p.name_or_key == platform_dump] == [False]

    plan = plan_retention(points, now=base + timedelta(days=14, hours=1), keep_days=7)
    assert deletions(plan) == ([(tenant.key, layout.snapshot_name(at)) for at in old],
                               sorted(k for at in old for k in dump_keys[at]))
    deleted = apply_retention(platform, plan)
    assert len(deleted) == 2 * len(old)

    # What MinIO holds now, read by a client of its own.
    store = new_store(endpoints)
    remaining = catalog.tenant_snapshots(store, tenant)
    assert [s.name for s in remaining] == [layout.snapshot_name(at) for at in recent]
    assert all(s.complete for s in remaining)
    assert [s.name for s in platform.cluster.snapshots(tenant.repository_name)] == [s.name for s in remaining]
    repo_keys = set(listing(store, tenant.repo_prefix))
    for at in old:
        assert f"{tenant.repo_prefix}snap-{snaps[at].uuid}.dat" not in repo_keys
    for at in recent:
        assert f"{tenant.repo_prefix}snap-{snaps[at].uuid}.dat" in repo_keys

    after = listing(store, org_prefix)
    assert set(after) == {k for at in recent for k in dump_keys[at]} | set(foreign)
    assert {k: after[k] for k in foreign} == foreign_listed
    assert [e.key for e in catalog.metadata_entries(store, tenant.org_id) if e.key != platform_dump] == [
        dump_keys[at][0] for at in recent]

    # The newest snapshot restores from what MinIO still holds (the blobs it shares with the
    # deleted snapshots' nights are all still there).
    restore_from_store(platform, tenant, layout.snapshot_name(nights[-1]), expected[nights[-1]])


def test_retention_keeps_the_newest_complete_backup_when_all_are_older_than_the_window(
        platform, seed, unique, endpoints):
    tenant = Tenant(f"o{unique}", "ns1")
    counts = seed(tenant)
    base = nightly(40)
    nights = [base + timedelta(days=n) for n in range(1, 4)]
    snaps, dump_keys, expected = _nightly_backups(platform, tenant, counts, nights)

    points = points_of(platform, tenant)
    assert len(points) == 2 * len(nights)
    plan = plan_retention(points, now=nights[-1] + timedelta(days=30), keep_days=7)
    assert deletions(plan) == ([(tenant.key, layout.snapshot_name(at)) for at in nights[:-1]],
                               sorted(k for at in nights[:-1] for k in dump_keys[at]))
    kept = {point.name_or_key: reason for point, reason in plan.keep}
    assert set(kept) == {layout.snapshot_name(nights[-1]), dump_keys[nights[-1]][0]}
    assert all("newest complete" in reason for reason in kept.values())
    apply_retention(platform, plan)

    store = new_store(endpoints)
    assert [s.name for s in catalog.tenant_snapshots(store, tenant)] == [layout.snapshot_name(nights[-1])]
    assert set(listing(store, f"metadata/{tenant.org_id}/")) == set(dump_keys[nights[-1]])
    restore_from_store(platform, tenant, snaps[nights[-1]].snapshot, expected[nights[-1]])


# --- 5. a later backup adds, never rewrites ---------------------------------------------------


def test_a_second_backup_only_adds_objects_and_rewrites_nothing_but_index_latest(platform, seed, unique):
    tenant = Tenant(f"o{unique}", "ns1")
    seed(tenant)
    first = backup_set(platform, [tenant], fresh_at(), PASSWORD)
    add_documents(platform, index_names(tenant, SPEC)[1], 1, 50)  # new segments: new data blobs

    latest_key = f"{tenant.repo_prefix}index.latest"
    generation_before = catalog.parse_generation(platform.store.get_bytes(latest_key))
    before = listing(platform.store)
    second = backup_set(platform, [tenant], fresh_at(), PASSWORD)
    after = listing(platform.store)

    assert sorted(set(before) - set(after)) == [], "a backup must never delete"
    assert sorted(key for key in before if after[key] != before[key]) == [latest_key]
    generation_after = catalog.parse_generation(platform.store.get_bytes(latest_key))
    assert generation_after > generation_before

    new = set(after) - set(before)
    allowed = (tenant.repo_prefix, "metadata/all/", f"metadata/{tenant.org_id}/")
    assert sorted(key for key in new if not key.startswith(allowed)) == []
    [snap] = second.snapshots
    assert {f"{tenant.repo_prefix}index-{generation_after}", f"{tenant.repo_prefix}snap-{snap.uuid}.dat"} <= new
    assert any(key.startswith(f"{tenant.repo_prefix}indices/") for key in new)
    assert {key for key in new if key.startswith("metadata/")} == {
        k for m in second.metadata for k in (m.key, m.checksum_key)}
    assert [s.uuid for s in catalog.tenant_snapshots(platform.store, tenant)] == [
        first.snapshots[0].uuid, snap.uuid]


# --- 6. the command line ------------------------------------------------------------------


def test_cli_backups_list_backup_without_password_and_prune_dry_run(platform, seed, unique, session_stack):
    stack = session_stack.stack_name
    tenant = Tenant(f"o{unique}", "ns1")
    seed(tenant)
    # Two nights, both older than the 7-day window: a prune would delete the first only.
    snaps = [snapshot(platform, tenant, at) for at in (nightly(20), nightly(19))]

    listed = run_cli("backups", "list", "--stack", stack, "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [row for row in json.loads(listed.stdout) if row["kind"] == "snapshot" and row["scope"] == tenant.key]
    assert [(r["name"], r["uuid"], r["complete"], r["state"]) for r in mine] == [
        (s.snapshot, s.uuid, True, "SUCCESS") for s in snaps]
    assert mine[-1]["indices"] == index_names(tenant, SPEC)

    before = listing(platform.store)
    refused = run_cli("backup", "--stack", stack, "--tenant", tenant.key)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drdrill: error:") and "--password-env" in lines[0], lines
    assert "Traceback" not in refused.stderr + refused.stdout
    assert listing(platform.store) == before

    dry = run_cli("backups", "prune", "--stack", stack, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete snapshot {snaps[0].snapshot} of {tenant.key}" in dry.stdout
    assert f"keep snapshot {snaps[1].snapshot} of {tenant.key}" in dry.stdout
    assert "dry run:" in dry.stdout
    assert listing(platform.store) == before
    assert [s.uuid for s in catalog.tenant_snapshots(platform.store, tenant)] == [s.uuid for s in snaps]
    assert [s.name for s in platform.cluster.snapshots(tenant.repository_name)] == [s.snapshot for s in snaps]

    # Each command prints its result once: the table on stdout, no copy of it among the logs.
    taken = run_cli("backup", "--stack", stack, "--tenant", tenant.key, "--es-only")
    assert taken.returncode == 0, taken.stderr
    [row] = [line for line in taken.stdout.splitlines() if line.startswith("snapshot")]
    name = row.split()[2]
    assert name not in taken.stderr, taken.stderr
    # The same flags as `metrics`: --config (an environment's [target]) or --stack, not both.
    both = run_cli("backups", "list", "--stack", stack, "--config", "drdrill.toml")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr, both.stderr


# --- 7. a tenant's backup holds its indices and no other tenant's ---------------------------


def test_a_tenant_backup_holds_exactly_its_own_indices(platform, seed, unique, session_stack):
    """Regression: with tenants org/ns1 and org/ns1-x, the snapshot under org/ns1/ held
    org-ns1-x-data-*: indices were selected by the pattern ``org-ns1-*``. They are selected by
    the platform's own map (tenant_containers rows) now."""
    tenant, neighbour = Tenant(f"o{unique}", "ns1"), Tenant(f"o{unique}", "ns1-x")
    seed(tenant)
    seed(neighbour)
    env = {**os.environ, PASSWORD_ENV: PASSWORD.decode()}
    result = subprocess.run([sys.executable, "-m", "drdrill", "backup", "--stack", session_stack.stack_name,
                             "--tenant", tenant.key, "--es-only", "--json"],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    [snap] = json.loads(result.stdout)["snapshots"]
    assert sorted(snap["indices"]) == index_names(tenant, SPEC)
    # What the store itself says the snapshot holds, read by a client of its own.
    [entry] = catalog.tenant_snapshots(new_store(session_stack.endpoints()), tenant)
    assert list(entry.indices) == index_names(tenant, SPEC)
    assert not any(i.startswith(neighbour.index_prefix) for i in entry.indices)


def test_an_index_claimed_by_two_tenants_is_refused_before_any_backup(platform, seed, unique, session_stack):
    tenant, other = Tenant(f"o{unique}", "ns1"), Tenant(f"o{unique}", "ns2")
    seed(tenant)
    seed(other)
    stolen = index_names(tenant, SPEC)[0]
    platform.db.add_container_row(other.org_id, other.namespace, "stolen", stolen)
    before = listing(platform.store)
    result = run_cli("backup", "--stack", session_stack.stack_name, "--tenant", tenant.key, "--es-only")
    assert result.returncode == 2, result.stderr
    assert stolen in result.stderr and "claimed by both" in result.stderr
    assert listing(platform.store) == before


def test_the_restore_refuses_a_snapshot_holding_another_tenants_index(platform, seed, unique):
    """The restore's foreign-index check asks the same map: a repository that holds another
    tenant's index (a mis-pathed backup job) is refused before anything is restored."""
    from drdrill.drill.snapshot_restore import restore_tenant
    from drdrill.errors import RestoreFailed

    tenant, other = Tenant(f"o{unique}", "ns1"), Tenant(f"o{unique}", "ns1-x")
    seed(tenant)
    seed(other)
    owners = TenantIndices(platform.db.containers_index_names())
    # The job wrote ns1-x's indices into ns1's path.
    repository = register_backup_repository(platform, tenant)
    info = platform.cluster.create_snapshot(repository, "misplaced", owners.indices_of(other), TIMEOUT_S)
    assert info.complete
    repo_sync.publish(platform.store, backup_repository_location(platform, tenant), tenant.repo_prefix)
    with pytest.raises(RestoreFailed, match="another tenant"):
        restore_tenant(platform, tenant, f"t{unique}", owners, timeout_s=TIMEOUT_S)
    assert set(platform.cluster.indices_named(owners.indices_of(other))) == set(owners.indices_of(other))


def test_tenants_restore_side_by_side_and_one_failing_tenant_does_not_hide_the_others(platform, seed, unique):
    from drdrill.drill.snapshot_restore import TenantRestoreJob, restore_tenants
    from drdrill.errors import RestoreFailed

    tenants = [Tenant(f"o{unique}", f"ns{n}") for n in range(1, 4)]
    counts = {t.key: seed(t) for t in tenants}
    at = fresh_at()
    for tenant in tenants:
        assert snapshot(platform, tenant, at).complete
    never_backed_up = Tenant(f"o{unique}", "ns9")
    owners = TenantIndices(platform.db.containers_index_names())
    for tenant in tenants:
        delete_tenant_indices(platform, tenant)
    heard: list[str] = []

    jobs = [TenantRestoreJob(t) for t in (tenants[0], never_backed_up, *tenants[1:])]
    outcome = restore_tenants(platform, jobs, f"t{unique}", owners, timeout_s=TIMEOUT_S, concurrency=2,
                              progress=heard.append)

    assert outcome.concurrency == 2
    # Results in the order given, whatever order they finished in.
    assert [r.tenant for r in outcome.restored] == [t.key for t in tenants]
    assert [(t, type(f)) for t, f in outcome.failed] == [(never_backed_up, RestoreFailed)]
    assert str(never_backed_up) in outcome.failed[0][1].message
    for tenant in tenants:
        assert {index: platform.cluster.count(index) for index in counts[tenant.key]} == counts[tenant.key]
    assert f"restored {len(jobs)}/{len(jobs)} tenants" in " ".join(heard)
    for tenant in tenants:
        platform.cluster.delete_repository(f"restore-{tenant.org_id}.{tenant.namespace}")
