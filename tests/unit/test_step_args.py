"""What a step declares about itself, checked when a run is planned."""

from __future__ import annotations

import pytest

from drdrill.drill import step_args as args
from drdrill.errors import UsageError


@args.checks_arguments(rto=args.duration("RTO"), count=args.at_least(1, "tenants"), tenant=args.tenant)
def a_step(drill, rto, count, tenant):  # pragma: no cover - only its declarations are read
    ...


def test_arguments_are_checked_with_the_steps_own_rules_and_named_by_line():
    args.check_step(a_step, {"rto": "5m", "count": 2, "tenant": "org1/ns1"}, None, "f.feature:3: 'Given x'")
    for bad, word in (({"rto": "5 minutes"}, "5 minutes"), ({"rto": "0s"}, "more than zero"),
                      ({"count": 0}, "at least 1"), ({"tenant": "Org_1/ns1"}, "Org_1")):
        with pytest.raises(UsageError) as refused:
            args.check_step(a_step, bad, None, "f.feature:3: 'Given x'")
        assert refused.value.message.startswith("f.feature:3: 'Given x': ") and word in refused.value.message
        assert refused.value.hint


def test_a_tenants_table_has_one_size():
    header = ["org_id", "namespace", "indices", "documents"]
    tenants, indices, docs = args.tenants_table([header, ["org1", "ns1", "2", "10"], ["org1", "ns2", "2", "10"]])
    assert [t.key for t in tenants] == ["org1/ns1", "org1/ns2"] and (indices, docs) == (2, 10)
    for table in ([header], [["org", "ns"], ["a", "b", "1", "1"]], [header, ["o", "n", "1", "1"], ["o", "m", "2", "1"]],
                  [header, ["o", "n", "x", "1"]], [header, ["o", "n", "1", "1"], ["o", "m"]], []):
        with pytest.raises(UsageError):
            args.tenants_table(table)


def test_destructive_and_target_declarations():
    def reads(restore_test):
        ...

    def writes(drill):
        ...

    assert not args.is_destructive(reads) and args.is_destructive(writes)
    assert args.is_destructive(args.destructive(reads))
    assert args.needed_target(args.needs_target("containers")(writes)) == "containers"
    assert args.needed_target(reads) is None


def test_byte_rates_and_versions():
    assert args.byte_rate_value("200mb") == "200mb"
    with pytest.raises(UsageError):
        args.byte_rate_value("fast")
    with pytest.raises(UsageError):
        args.es_version("7.10.2")
