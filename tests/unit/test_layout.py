"""The bucket layout: tenant names, dump keys, snapshot names, whole-bucket validation."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from drdrill.core.layout import (
    KeyInfo,
    Tenant,
    checksum_key,
    checksum_record,
    classify_key,
    format_timestamp,
    metadata_key,
    parse_checksum_record,
    parse_metadata_key,
    parse_snapshot_name,
    parse_timestamp,
    snapshot_name,
    validate_bucket_layout,
)
from drdrill.errors import EXIT_USAGE, BackupIntegrityError, ConfigError

NIGHT = datetime(2026, 11, 24, 2, 0, 0, tzinfo=UTC)

# --- tenants ---------------------------------------------------------------------------------


def test_tenant_names_everything_the_platform_derives_from_it() -> None:
    tenant = Tenant.parse("org1/ns_a-2")
    assert tenant == Tenant("org1", "ns_a-2")
    assert tenant.key == str(tenant) == "org1/ns_a-2"
    assert tenant.repo_prefix == "org1/ns_a-2/"
    assert tenant.repository_name == "tenant-org1.ns_a-2"
    assert tenant.index_prefix == "org1-ns_a-2-"


def test_repository_names_tell_apart_tenants_whose_index_prefixes_collide() -> None:
    left, right = Tenant("a-b", "c"), Tenant("a", "b-c")
    assert left.index_prefix == right.index_prefix  # the platform's naming, documented
    assert left.repository_name != right.repository_name
    assert left.repo_prefix != right.repo_prefix


def test_tenant_segments_of_maximum_length_are_accepted() -> None:
    assert Tenant("a" * 63, "0" * 63).key == "a" * 63 + "/" + "0" * 63


@pytest.mark.parametrize(
    ("org_id", "namespace", "bad"),
    [
        ("Org1", "ns1", "org_id"),
        ("org1", "-ns", "namespace"),
        ("_org", "ns1", "org_id"),
        ("", "ns1", "org_id"),
        ("org1", "n" * 64, "namespace"),
        ("org.1", "ns1", "org_id"),
        ("org1", "ns 1", "namespace"),
        ("org1", "ns/1", "namespace"),
        ("metadata", "ns1", "org_id"),
        ("all", "ns1", "org_id"),
    ],
)
def test_invalid_tenant_segments_raise_config_error_naming_the_value(
    org_id: str, namespace: str, bad: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Tenant(org_id, namespace)
    error = info.value
    assert error.key == bad
    assert repr(org_id if bad == "org_id" else namespace) in error.message
    assert error.exit_status == EXIT_USAGE


def test_invalid_segment_message_says_what_is_expected() -> None:
    with pytest.raises(ConfigError, match=r"expected 1-63 characters of a-z, 0-9"):
        Tenant("ORG", "ns")


@pytest.mark.parametrize("text", ["org1", "org1/ns1/x", "/ns1", "org1/", "", "org1\\ns1"])
def test_tenant_parse_requires_exactly_org_slash_namespace(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Tenant.parse(text)
    assert repr(text) in info.value.message or info.value.key in ("org_id", "namespace")


# --- timestamps ------------------------------------------------------------------------------


def test_timestamps_are_utc_to_the_second() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 11, 24, 4, 0, 0, 999_999, tzinfo=plus_two)
    assert format_timestamp(local) == "20261124T020000Z"


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 11, 24, 2, 0, 0))  # naive on purpose


@pytest.mark.parametrize("text", ["20261124T020000Z", "20261124_020000"])
def test_both_timestamp_formats_parse_as_utc(text: str) -> None:
    assert parse_timestamp(text) == NIGHT


@pytest.mark.parametrize(
    "text",
    ["20261324T020000Z", "20261124T250000Z", "2026112T020000Z", "20261124t020000z", "20261124-020000", ""],
)
def test_non_timestamps_do_not_parse(text: str) -> None:
    assert parse_timestamp(text) is None


# --- metadata dumps --------------------------------------------------------------------------


def test_metadata_keys_follow_the_runbook() -> None:
    assert metadata_key("all", NIGHT) == "metadata/all/metadata_backup_all_20261124_020000.sql.enc"
    assert metadata_key("org1", NIGHT) == "metadata/org1/metadata_backup_org1_20261124_020000.sql.enc"
    # What drdrill's earlier releases wrote, still read.
    assert metadata_key("all", NIGHT, iso_naming=True) == "metadata/all/metadata_backup_all_20261124T020000Z.sql.enc"


def test_dumps_of_both_namings_order_by_time() -> None:
    keys = [metadata_key("all", NIGHT + timedelta(hours=h), iso_naming=h % 2 == 0) for h in (3, 0, 2, 1)]
    parsed = sorted((parse_metadata_key(k) for k in keys), key=lambda d: d.taken_at)  # type: ignore[union-attr]
    assert [d.taken_at.hour for d in parsed if d] == [2, 3, 4, 5]
    assert [d.iso_naming for d in parsed if d] == [True, False, True, False]


@pytest.mark.parametrize("scope", ["metadata", "Org", "", "a/b"])
def test_metadata_key_refuses_bad_scopes(scope: str) -> None:
    with pytest.raises(ConfigError):
        metadata_key(scope, NIGHT)


@pytest.mark.parametrize("scope", ["all", "org1", "my_org"])
def test_metadata_keys_round_trip(scope: str) -> None:
    key = metadata_key(scope, NIGHT)
    parsed = parse_metadata_key(key)
    assert parsed is not None
    assert (parsed.scope, parsed.taken_at, parsed.key, parsed.iso_naming) == (scope, NIGHT, key, False)
    old = parse_metadata_key(metadata_key(scope, NIGHT, iso_naming=True))
    assert old is not None and (old.scope, old.taken_at, old.iso_naming) == (scope, NIGHT, True)


def test_dumps_named_by_the_platform_scripts_are_recognised() -> None:
    parsed = parse_metadata_key("metadata/org1/metadata_backup_org1_20261124_020000.sql.enc")
    assert parsed is not None
    assert parsed.scope == "org1"
    assert parsed.taken_at == NIGHT
    assert parsed.iso_naming is False


@pytest.mark.parametrize(
    "key",
    [
        "metadata/org1/metadata_backup_org2_20261124T020000Z.sql.enc",  # scope mismatch
        "metadata/all/metadata_backup_all_20261124T020000Z.sql",  # not encrypted
        "metadata/all/metadata_backup_all_20261124T020000Z.sql.enc.sha256",  # the checksum
        "metadata/all/sub/metadata_backup_all_20261124T020000Z.sql.enc",
        "metadata/all/metadata_backup_all_latest.sql.enc",
        "metadata/all/metadata_backup_all_20261399T020000Z.sql.enc",
        "backup/all/metadata_backup_all_20261124T020000Z.sql.enc",
        "metadata/Org1/metadata_backup_Org1_20261124T020000Z.sql.enc",
        "metadata/all/notes.txt",
    ],
)
def test_keys_off_the_naming_are_not_dumps(key: str) -> None:
    assert parse_metadata_key(key) is None


def test_checksum_record_is_sha256sum_format_and_round_trips() -> None:
    key = metadata_key("all", NIGHT)
    digest = hashlib.sha256(b"ciphertext").hexdigest()
    record = checksum_record(digest.upper(), key)
    assert checksum_key(key) == key + ".sha256"
    assert record == f"{digest}  metadata_backup_all_20261124_020000.sql.enc\n"
    assert parse_checksum_record(record, key) == digest


def test_checksum_record_in_binary_mode_is_accepted() -> None:
    key = metadata_key("org1", NIGHT)
    digest = hashlib.sha256(b"x").hexdigest()
    assert parse_checksum_record(f"{digest} *{key.rsplit('/', 1)[1]}\n", key) == digest


def test_checksum_record_for_another_file_is_an_integrity_error() -> None:
    key = metadata_key("all", NIGHT)
    other = metadata_key("all", NIGHT - timedelta(days=1))
    record = checksum_record(hashlib.sha256(b"x").hexdigest(), other)
    with pytest.raises(BackupIntegrityError, match="expected 'metadata_backup_all_20261124_020000") as info:
        parse_checksum_record(record, key)
    assert info.value.key == checksum_key(key)


@pytest.mark.parametrize("text", ["", "abc  f.sql.enc\n", "a" * 64 + "\n", ("a" * 64 + "  f\n") * 2])
def test_malformed_checksum_records_are_integrity_errors(text: str) -> None:
    with pytest.raises(BackupIntegrityError):
        parse_checksum_record(text, "metadata/all/f")


def test_checksum_record_refuses_a_non_digest() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        checksum_record("not-hex", metadata_key("all", NIGHT))


# --- snapshots -------------------------------------------------------------------------------


def test_snapshot_names_are_lowercase_and_round_trip() -> None:
    name = snapshot_name(NIGHT + timedelta(microseconds=5))
    assert name == "drdrill-20261124t020000z"
    assert name == name.lower()
    assert parse_snapshot_name(name) == NIGHT


@pytest.mark.parametrize(
    "name",
    [
        "drdrill-20261124T020000Z",
        "nightly-20261124t020000z",
        "drdrill-20261124t020000z-extra",
        "drdrill-20261324t020000z",
        "snapshot-2026.11.24",
        "drdrill-",
    ],
)
def test_other_snapshot_names_are_not_drdrills(name: str) -> None:
    assert parse_snapshot_name(name) is None


# --- classification and validation --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (metadata_key("all", NIGHT), KeyInfo("metadata", "all")),
        (checksum_key(metadata_key("org1", NIGHT)), KeyInfo("metadata-checksum", "org1")),
        ("org1/ns1/index-12", KeyInfo("snapshot-repo", "org1/ns1", Tenant("org1", "ns1"))),
        ("org1/ns1/index.latest", KeyInfo("snapshot-repo", "org1/ns1", Tenant("org1", "ns1"))),
        ("org1/ns1/snap-AbC_d.dat", KeyInfo("snapshot-repo", "org1/ns1", Tenant("org1", "ns1"))),
        ("org1/ns1/meta-AbC_d.dat", KeyInfo("snapshot-repo", "org1/ns1", Tenant("org1", "ns1"))),
        ("org1/ns1/indices/Xy1/0/__abc", KeyInfo("snapshot-repo", "org1/ns1", Tenant("org1", "ns1"))),
        ("org1/ns1/notes.txt", KeyInfo("unknown")),
        ("Org1/ns1/index-0", KeyInfo("unknown")),
        ("metadata/ns1/index-0", KeyInfo("unknown")),
        ("org1/index-0", KeyInfo("unknown")),
        ("index-0", KeyInfo("unknown")),
        ("metadata/all/notes.txt.sha256", KeyInfo("unknown")),
    ],
)
def test_classify_key(key: str, expected: KeyInfo) -> None:
    assert classify_key(key) == expected


def _platform_bucket() -> list[str]:
    dump = metadata_key("all", NIGHT)
    return [
        dump,
        checksum_key(dump),
        "metadata/org1/metadata_backup_org1_20261124_020000.sql.enc",
        "org1/ns1/index-3",
        "org1/ns1/index.latest",
        "org1/ns1/snap-u1.dat",
        "org1/ns1/indices/i1/0/__b1",
        "org1/ns1/README",  # a stray object inside a real repository is not a wrong bucket
        "org2/ns_x/index-0",
        "org2/",  # a console's folder marker
    ]


def test_the_platform_layout_has_no_problems() -> None:
    assert validate_bucket_layout(_platform_bucket()) == []
    assert validate_bucket_layout([]) == []


def test_a_foreign_bucket_gets_one_problem_per_offending_prefix() -> None:
    keys = [
        *_platform_bucket(),
        "photos/2024/a.jpg",
        "photos/2024/b.jpg",
        "photos/2025/c.jpg",
        "readme.txt",
        "logs/app.log",
        "metadata/old/dump.sql",
        "Org3/ns1/index-0",
    ]
    problems = validate_bucket_layout(keys)
    assert [p.split(":", 1)[0] for p in problems] == [
        "'Org3/ns1/'",
        "'logs/'",
        "'metadata/old/'",
        "'photos/2024/'",
        "'photos/2025/'",
        "'readme.txt'",
    ]
    assert all("\n" not in p for p in problems)
    assert "not a tenant prefix" in problems[0] and "'Org3'" in problems[0]
    assert "not an Elasticsearch snapshot repository" in problems[3]
    assert "bucket root" in problems[5]


def test_many_problems_are_capped_with_a_count() -> None:
    keys = [f"junk{i:02d}/x/file" for i in range(25)]
    problems = validate_bucket_layout(keys, max_problems=5)
    assert len(problems) == 6
    assert problems[-1] == "... and 20 more prefixes not in the platform's layout"


# --- which tenant owns which index --------------------------------------------------------


def test_tenant_indices_follow_the_rows_not_the_prefix():
    from drdrill.core.layout import TenantIndices

    ns1, ns1x = Tenant("org1", "ns1"), Tenant("org1", "ns1-x")
    owners = TenantIndices([("org1", "ns1", "org1-ns1-data-000"), ("org1", "ns1-x", "org1-ns1-x-data-000"),
                            ("org1", "ns1", "org1-ns1-canary"), ("org1", "ns1", "org1-ns1-data-000")])
    assert owners.indices_of(ns1) == ["org1-ns1-canary", "org1-ns1-data-000"]  # a repeated row counts once
    assert owners.indices_of(ns1x) == ["org1-ns1-x-data-000"]
    assert owners.owner_of("org1-ns1-x-data-000") == ns1x and owners.owner_of("unknown") is None
    assert owners.foreign(ns1, ["org1-ns1-data-000", "org1-ns1-x-data-000", "unknown"]) == ["org1-ns1-x-data-000"]
    assert owners.tenants == [ns1, ns1x]
    assert TenantIndices(owners.to_rows()).to_rows() == owners.to_rows()


def test_an_index_claimed_by_two_tenants_is_refused():
    from drdrill.core.layout import TenantIndices

    with pytest.raises(ConfigError, match="claimed by both"):
        TenantIndices([("a-b", "c", "a-b-c-data-000"), ("a", "b-c", "a-b-c-data-000")])


def test_tenant_sets_whose_index_names_collide_are_ambiguous():
    from drdrill.core.layout import check_unambiguous

    check_unambiguous([Tenant("org1", "ns1"), Tenant("org1", "ns1-x")])  # distinct names: fine
    with pytest.raises(ConfigError, match="ambiguous"):
        check_unambiguous([Tenant("a-b", "c"), Tenant("a", "b-c")])


def test_the_platform_scripts_dump_name_parses_back():
    at = datetime(2026, 11, 24, 2, 0, 5, tzinfo=UTC)
    key = metadata_key("all", at)
    assert key == "metadata/all/metadata_backup_all_20261124_020005.sql.enc"
    parsed = parse_metadata_key(key)
    assert parsed is not None and parsed.taken_at == at and not parsed.iso_naming


# --- one definition of a complete recovery point ------------------------------------------


@pytest.mark.parametrize(("args", "complete"), [
    (("SUCCESS",), True), (("SUCCESS", 0, 4), True), (("SUCCESS", 1, 4), False), (("SUCCESS", 0, 0), False),
    (("PARTIAL",), False), (("FAILED",), False), (("IN_PROGRESS",), False),
])
def test_snapshot_completeness(args, complete):
    from drdrill.core.completeness import snapshot_is_complete

    assert snapshot_is_complete(*args) is complete


def test_dump_completeness():
    from drdrill.core.completeness import dump_is_complete

    assert dump_is_complete(100, has_checksum=True, needs_checksum=True)
    assert not dump_is_complete(100, has_checksum=False, needs_checksum=True)  # drdrill's, interrupted
    assert dump_is_complete(100, has_checksum=False, needs_checksum=False)  # the platform's: never a record
    assert not dump_is_complete(0, has_checksum=True, needs_checksum=True)
