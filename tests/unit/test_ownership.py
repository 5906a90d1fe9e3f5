"""Who may write what on an environment drdrill does not own: the policy, how each service's
requests are read as writes, the marks, untrusted names, and the disk headroom rule."""

from __future__ import annotations

import pytest

from drdrill.adapters.es_guard import writes_of
from drdrill.adapters.s3 import s3_writes
from drdrill.core.headroom import NodeRoom, headroom_problem, reserved_bytes
from drdrill.core.layout import blob_path_problem, index_name_problem
from drdrill.core.ownership import (
    UNRESTRICTED,
    Mark,
    OwnedOnly,
    RefusedWrite,
    Write,
    drill_id_in_name,
    name_prefix,
    read_mark,
    scratch_database_name,
)
from drdrill.errors import UsageError

DRILL = "20261202T034004Z-abc123"
PREFIX = name_prefix(DRILL)


def policy() -> OwnedOnly:
    return OwnedOnly("staging", DRILL)


def test_only_creations_named_as_the_runs_are_allowed_and_then_owned():
    p = policy()
    p.check(Write("elasticsearch", "index", PREFIX + "logs-1", "create"))
    p.check(Write("elasticsearch", "index", PREFIX + "logs-1", "delete"))  # created: owned
    with pytest.raises(RefusedWrite) as refused:
        p.check(Write("elasticsearch", "index", "logs-1", "create"))
    assert "not named as this drill's" in refused.value.message and isinstance(refused.value, UsageError)
    with pytest.raises(RefusedWrite, match="not created by this drill"):
        p.check(Write("elasticsearch", "index", PREFIX + "never-created", "delete"))
    with pytest.raises(RefusedWrite):  # another run's prefix
        p.check(Write("elasticsearch", "index", name_prefix("20261202T034004Z-ffffff") + "x", "create"))


@pytest.mark.parametrize("name", [PREFIX + "x,*", PREFIX + "*", PREFIX + "a b", PREFIX + "../x", PREFIX])
def test_names_with_lists_patterns_or_path_tricks_are_never_claimed(name):
    with pytest.raises(RefusedWrite):
        policy().check(Write("elasticsearch", "index", name, "create"))


def test_databases_the_run_created_or_was_granted():
    p = policy()
    scratch = scratch_database_name(DRILL)
    assert not p.may_write_database(scratch) and not p.may_write_database("es_metadata")
    p.check(Write("postgres", "database", scratch, "create"))
    assert p.may_write_database(scratch)
    p.check(Write("postgres", "database", scratch, "delete"))
    with pytest.raises(RefusedWrite):
        p.check(Write("postgres", "database", "es_metadata", "delete"))
    p.granted_databases = frozenset({"given_scratch"})
    p.check(Write("postgres", "database", "given_scratch", "write"))  # wiped: yes
    with pytest.raises(RefusedWrite):
        p.check(Write("postgres", "database", "given_scratch", "delete"))  # dropped: never


def test_the_store_and_the_cluster_settings_are_never_drdrills_on_live():
    for write in (Write("s3", "object", "metadata/all/x.sql.enc", "delete"), Write("s3", "object", "x", "write"),
                  Write("elasticsearch", "cluster", "", "write"), Write("elasticsearch", "request", "", "write")):
        with pytest.raises(RefusedWrite):
            policy().check(write)
        UNRESTRICTED.check(write)  # a target drdrill started: anything


def test_adopted_leftovers_may_be_removed():
    p = policy()
    other = name_prefix("20261201T010101Z-aaaaaa") + "logs"
    with pytest.raises(RefusedWrite):
        p.check(Write("elasticsearch", "index", other, "delete"))
    p.adopt("index", other)
    p.check(Write("elasticsearch", "index", other, "delete"))


def test_elasticsearch_requests_read_as_writes():
    assert writes_of("GET", "cat.indices", "/_cat/indices", {}, None) == []
    assert writes_of("POST", "search", "/x/_search", {"index": "x"}, {}) == []
    assert writes_of("POST", "cluster.allocation_explain", "/_cluster/allocation/explain", {}, {}) == []
    deleted = writes_of("DELETE", "indices.delete", "/a,b", {"index": "a,b%2Cc"}, None)
    assert [(w.kind, w.name, w.verb) for w in deleted] == [("index", "a", "delete"), ("index", "b,c", "delete")]
    assert writes_of("PUT", "cluster.put_settings", "/_cluster/settings", {}, {})[0].kind == "cluster"
    assert writes_of("POST", "bulk", "/_bulk", {}, [])[0].kind == "request"
    assert writes_of("PUT", "snapshot.create_repository", "/_snapshot/r", {"name": "r"}, {})[0].verb == "create"
    renamed = writes_of("POST", "snapshot.restore", "/_snapshot/r/s/_restore", {"repository": "r", "snapshot": "s"},
                        {"indices": "a,b", "rename_pattern": "(.+)", "rename_replacement": PREFIX + "$1"})
    assert [w.name for w in renamed] == [PREFIX + "a", PREFIX + "b"]
    plain = writes_of("POST", "snapshot.restore", "/_snapshot/r/s/_restore", {}, {"indices": "a"})
    assert [(w.name, w.verb) for w in plain] == [("a", "create")]
    every = writes_of("POST", "snapshot.restore", "/_snapshot/r/s/_restore", {}, {"include_global_state": True})
    assert {w.kind for w in every} == {"cluster", "index"}
    for writes in (renamed, plain, every):
        policy_ = policy()
        ok = all(_allowed(policy_, w) for w in writes)
        assert ok is (writes is renamed)


def _allowed(p: OwnedOnly, write: Write) -> bool:
    try:
        p.check(write)
        return True
    except RefusedWrite:
        return False


def test_s3_operations_read_as_writes():
    assert s3_writes("GetObject", {"Key": "k"}) == [] and s3_writes("ListObjectsV2", {}) == []
    assert [(w.name, w.verb) for w in s3_writes("DeleteObjects", {"Delete": {"Objects": [{"Key": "a"}]}})] == \
        [("a", "delete")]
    assert s3_writes("PutObject", {"Key": "k"})[0].verb == "write"
    assert s3_writes("CreateBucket", {"Bucket": "b"})[0].kind == "request"
    assert s3_writes("CompleteMultipartUpload", {"Key": "k"})[0].name == "k"


def test_marks_are_read_back_strictly():
    mark = Mark(DRILL, "2026-12-02T03:40:04+00:00")
    assert read_mark(mark.text()) == mark and read_mark(mark.to_dict()) == mark
    for bad in (None, "", "{", {"created_by": "someone", "drill_id": DRILL, "started_at": "x"},
                {"created_by": "drdrill", "drill_id": "x,*", "started_at": "x"}, ["drdrill"]):
        assert read_mark(bad) is None
    assert drill_id_in_name(PREFIX + "org1.ns1") == DRILL
    assert drill_id_in_name("drdrill-restore-x") is None and drill_id_in_name("logs-1") is None


@pytest.mark.parametrize(("name", "problem"), [
    ("logs-1", None), ("a.b_c+d", None), ("x,*", "contains"), ("Logs", "upper-case"), ("-x", "starts with"),
    ("..", "is . or .."), ("a/b", "contains"), ("", "empty"), ("a" * 256, "longer"), ("a b", "contains"),
    ("a\x00b", "contains")])
def test_index_names_from_a_repository_follow_elasticsearchs_rules(name, problem):
    found = index_name_problem(name)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(("relative", "ok"), [
    ("indices/abc/0/__x", True), ("index.latest", True), ("../escape", False), ("a/../../b", False),
    ("/etc/passwd", False), ("a\\b", False), ("a//b", False), ("./a", False), ("a\x00", False), ("", False)])
def test_object_keys_must_be_plain_relative_paths(relative, ok):
    assert (blob_path_problem(relative) is None) is ok


def test_watermarks_in_every_spelling():
    total = 1000 * 2**20
    assert reserved_bytes("90%", total) == 100 * 2**20
    assert reserved_bytes("0.95", total) == pytest.approx(50 * 2**20, abs=1)
    assert reserved_bytes("500mb", total) == 500 * 2**20 and reserved_bytes("1gb", total) == 2**30
    assert reserved_bytes("1024", total) == 1024  # a plain number above 1: bytes
    with pytest.raises(ValueError):
        reserved_bytes("lots", total)


def test_a_restore_is_refused_where_it_would_cross_the_high_watermark():
    node = NodeRoom("es-0", total_bytes=100 * 2**20, available_bytes=30 * 2**20, reserved_bytes=10 * 2**20)
    assert headroom_problem(19 * 2**20, 5 * 2**20, [node]) is None
    crossing = headroom_problem(21 * 2**20, 5 * 2**20, [node])
    assert crossing is not None and "21.0 MiB" in crossing and "20.0 MiB below it" in crossing
    two = [node, NodeRoom("es-1", 100 * 2**20, 30 * 2**20, 10 * 2**20)]
    assert headroom_problem(30 * 2**20, 15 * 2**20, two) is None  # spread over both
    assert "fits on no data node" in (headroom_problem(30 * 2**20, 25 * 2**20, two) or "")
    assert headroom_problem(1, 1, []) == "Elasticsearch reports no data node"


def test_the_step_library_declares_what_needs_a_destructive_target():
    from pytest_bdd.steps import step_function_context_registry

    from drdrill.drill.features import BUNDLED_STEPS, step_modules
    from drdrill.drill.step_args import is_destructive as is_destructive_step

    step_modules(__import__("pathlib").Path("/nonexistent"))
    by_module: dict[str, set[bool]] = {}
    for context in step_function_context_registry.values():
        module = context.step_func.__module__
        if module in BUNDLED_STEPS:
            by_module.setdefault(module, set()).add(is_destructive_step(context.step_func))
    assert by_module["drdrill.steps.restore_test_steps"] == {False}
    assert by_module["drdrill.steps.drill_steps"] == {True}
    assert by_module["drdrill.steps.fault_steps"] == {True}
