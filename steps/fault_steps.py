"""Fault-injection steps: the fault catalogue (drdrill.drill.faults) as Gherkin, and the
steps that check how a failed recovery was diagnosed. Every fault is a phrase of its own, so
a misspelt fault is caught before anything starts (no step matches it)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from drdrill.core.layout import Tenant
from drdrill.drill import faults
from drdrill.drill import step_args as args
from drdrill.drill.faults.containers import CONTAINER_FAULTS
from drdrill.drill.faults.containers import store_slowed as store_slowed_by
from drdrill.drill.faults.kubernetes import KUBERNETES_FAULTS
from drdrill.drill.reporting import store_bound_restore


@given("the drill is expected to fail")
def expect_failure(drill):
    drill.expect_failure = True


def _simple(injector, target=None):
    def step(drill):
        injector(drill)
    return args.needs_target(target)(step) if target else step


def _for_tenant(injector):
    @args.checks_arguments(tenant=args.tenant)
    def step(drill, tenant):
        injector(drill, Tenant.parse(tenant))
    return step


for _faults, _target in ((faults.SIMPLE_FAULTS, None), (CONTAINER_FAULTS, "containers"),
                         (KUBERNETES_FAULTS, "kubernetes")):
    for _phrase, _injector in _faults.items():
        when(_phrase)(_simple(_injector, _target))
        given(_phrase)(_simple(_injector, _target))

for _tenant_phrase, _tenant_injector in faults.TENANT_FAULTS.items():
    _parser = parsers.parse('tenant "{tenant}"\'s ' + _tenant_phrase)
    when(_parser)(_for_tenant(_tenant_injector))
    given(_parser)(_for_tenant(_tenant_injector))


@given(parsers.parse('tenant "{tenant}"\'s backup credentials also reach tenant "{other}"\'s path'))
@args.checks_arguments(tenant=args.tenant, other=args.tenant)
def widened(drill, tenant, other):
    faults.credentials_widened(drill, Tenant.parse(tenant), Tenant.parse(other))


@when(parsers.parse("the object store's network adds {latency_ms:d} ms to every reply and carries at most "
                    "{kib_per_s:d} KiB/s"))
@args.needs_target("containers")
@args.checks_arguments(latency_ms=args.at_least(0, "latency (ms)"), kib_per_s=args.at_least(1, "bandwidth (KiB/s)"))
def store_slowed(drill, latency_ms, kib_per_s):
    store_slowed_by(drill, latency_ms, kib_per_s)


@then("the report names the object store as the bottleneck of the restore")
def store_named_bottleneck(drill):
    found = store_bound_restore(drill.outcome())
    if found is None:
        restores = drill.outcome().snapshot_restores
        raise AssertionError(f"the restore was not bound by the store: fetching took "
                             f"{sum(r.fetch_seconds for r in restores):.2f}s, restoring "
                             f"{sum(r.restore_seconds for r in restores):.2f}s")


@when(parsers.parse('the repository of tenant "{tenant}" is swapped for that of tenant "{other}"'))
@args.checks_arguments(tenant=args.tenant, other=args.tenant)
def swapped(drill, tenant, other):
    faults.repository_swapped(drill, Tenant.parse(tenant), Tenant.parse(other))


def _problem(drill, kind: str, phase: str):
    drill.expectation_checked = True
    found = [p for p in drill.outcome().problems if p.kind == kind and p.phase == phase]
    if not found:
        seen = "; ".join(f"{p.kind} in {p.phase}: {p.summary}" for p in drill.problems) or "no problem at all"
        raise AssertionError(f"expected the drill to be {kind} in {phase}, but: {seen}")
    return found


@then(parsers.parse('the recovery fails in phase "{phase}"'))
def fails_in(drill, phase):
    _problem(drill, "failed", phase)


@then(parsers.parse('the drill errors in phase "{phase}"'))
def errors_in(drill, phase):
    _problem(drill, "error", phase)


@then(parsers.parse('the diagnosis names "{words}"'))
def diagnosis_names(drill, words):
    """Only the diagnosis and the probe that proved it count, not the failure's own message."""
    texts = []
    for problem in drill.outcome().problems:
        probe = problem.evidence.get("failed_probe") or {}
        texts.append(" ".join(filter(None, [problem.diagnosis, probe.get("check"), probe.get("result")])))
    if not any(words.lower() in text.lower() for text in texts):
        raise AssertionError(f"no diagnosis names {words!r}: {texts}")
