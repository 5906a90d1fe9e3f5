"""Steps that read as the runbook does. Each one parses its words, calls drdrill, and lets
the fixtures carry state: no logic lives here.

Fixtures come from drdrill's pytest plugin (drdrill.drill.bdd): ``drill_run`` (one per run)
and ``drill`` (one per scenario).
"""

from __future__ import annotations

from dataclasses import replace

from pytest_bdd import given, parsers, then, when

from drdrill.core.layout import Tenant
from drdrill.core.objectives import ObjectiveCheck, Objectives
from drdrill.drill import step_args as args
from drdrill.drill.checks import require
from drdrill.errors import RecoveryFailure

RTO, RPO = args.duration("RTO"), args.duration("RPO")

# --- the platform before the disaster ----------------------------------------------------


@given(parsers.parse("the objectives are RTO {rto} and RPO {rpo}"))
@args.checks_arguments(rto=RTO, rpo=RPO)
def objectives(drill, drill_run, rto, rpo):
    drill.settings.objectives = drill_run.objectives(Objectives(RTO(rto), RPO(rpo)))


@given(parsers.parse("the platform holds {count:d} tenants with {indices:d} indices of {docs:d} documents each"))
@args.checks_arguments(count=args.at_least(1, "tenants"), indices=args.at_least(1, "indices per tenant"),
                       docs=args.at_least(0, "documents per index"))
def platform_with_n_tenants(drill, count, indices, docs):
    drill.settings.tenants = [Tenant(f"org{1 + n // 2}", f"ns{1 + n % 2}") for n in range(count)]
    drill.settings.data = replace(drill.settings.data, indices_per_tenant=indices, docs_per_index=docs)
    drill.prepare()


@given(parsers.parse("the platform's indices have {replicas:d} replicas"))
@given(parsers.parse("the platform's indices have {replicas:d} replica"))
@args.checks_arguments(replicas=args.at_least(0, "replicas"))
def platform_replicas(drill, replicas):
    """Before the platform is seeded: its indices' number_of_replicas (default: as many as the
    cluster can hold, up to one)."""
    drill.settings.data = replace(drill.settings.data, replicas=replicas)


@given("the platform holds the configured tenants")
def platform_with_configured_tenants(drill):
    drill.prepare()  # tenants and sizes from drdrill.toml / --config (defaults: 3 tenants x 2 x 1000)


@given("the platform holds these tenants:")
@args.checks_table(args.tenants_table)
def platform_with_tenants(drill, datatable):
    tenants, indices, docs = args.tenants_table(datatable)
    drill.settings.tenants = tenants
    drill.settings.data = replace(drill.settings.data, indices_per_tenant=indices, docs_per_index=docs)
    drill.prepare()


@given("the nightly backup has run")
def nightly_backup(drill):
    drill.take_backup()


@given(parsers.parse("the nightly backup has run on each of the last {nights:d} nights"))
@args.checks_arguments(nights=args.at_least(1, "nights"))
def nightly_backups(drill, nights):
    drill.take_backup(nights)


@when(parsers.parse("the retention policy of {days:d} days is applied"))
@args.checks_arguments(days=args.at_least(1, "retention days"))
def retention_applied(drill, days):
    drill.apply_retention(days)


@then(parsers.parse("every tenant and the metadata keep a recovery point for each of the last {days:d} days "
                    "and nothing older"))
@args.checks_arguments(days=args.at_least(1, "retention days"))
def retention_holds(drill, days):
    drill.check_retention(days)


# --- the disaster ------------------------------------------------------------------------


@when("the site is lost")
def site_lost(drill):
    drill.disaster("site loss")


@when("the metadata database is lost")
def metadata_lost(drill):
    drill.disaster("metadata loss")


@when(parsers.parse('tenant "{tenant}" loses its data'))
@args.checks_arguments(tenant=args.tenant)
def tenant_lost(drill, tenant):
    drill.tenant_disaster(Tenant.parse(tenant))


# --- the runbook's recovery steps --------------------------------------------------------


@when("Elasticsearch and PostgreSQL are redeployed")
@when("PostgreSQL is redeployed")
def redeploy(drill):
    drill.deploy()


@when("the metadata database is restored from the newest dump in metadata/all")
def restore_metadata_all(drill):
    drill.restore_metadata()


@when(parsers.parse('the rows of tenant "{tenant}" are restored from the newest dump of its organisation'))
@args.checks_arguments(tenant=args.tenant)
def restore_tenant_rows(drill, tenant):
    drill.restore_tenant_rows(Tenant.parse(tenant))


@given(parsers.parse("tenants are restored {count:d} at a time"))
@args.checks_arguments(count=args.at_least(1, "tenants restored at a time"))
def restore_concurrency(drill, count):
    drill.settings.restore_concurrency = count


@when(parsers.parse("the operator sets the recovery throttle to {value}"))
@args.checks_arguments(value=args.byte_rate_value)
def operator_sets_recovery_throttle(drill, value):
    drill.set_recovery_throttle(value)


@when("every tenant's snapshot is restored from MinIO")
def restore_all_snapshots(drill):
    drill.restore_snapshots()


@when(parsers.parse('the snapshot of tenant "{tenant}" is restored from MinIO'))
@args.checks_arguments(tenant=args.tenant)
def restore_one_snapshot(drill, tenant):
    drill.restore_snapshots([Tenant.parse(tenant)])


@when("data integrity is verified")
def verify(drill):
    drill.verify()


@when("each tenant's backup credentials are tried on every path")
def try_isolation(drill):
    drill.check_isolation()


@when("metadata integrity is verified")
def verify_metadata(drill):
    drill.verify(metadata_only=True)


# --- outcomes ----------------------------------------------------------------------------


@then("every index is green with the documents its snapshot held")
def indices_ok(drill):
    require(drill.checks, ("is green", "document count", "exists"))


@then("the tenant_containers rows match the backup")
def rows_ok(drill):
    require(drill.checks, ("tenant_containers rows",))


@then("every tenant row has its indices and every index its row")
def cross_store_ok(drill):
    require(drill.checks, ("every tenant row", "every restored index"))


@then("each tenant's backup credentials reach only its own path")
def isolation_ok(drill):
    require(drill.checks, ("isolation:",))


@then("the canary writes up to the backup are all back")
def canaries_ok(drill):
    require(drill.checks, ("canaries in",))


@then(parsers.parse('tenant "{tenant}" was not touched'))
@args.checks_arguments(tenant=args.tenant)
def untouched(drill, tenant):
    drill.check_untouched(Tenant.parse(tenant))


def _objective(name: str, value: float | None, target: float) -> None:
    result = ObjectiveCheck(name, value, target)  # the same rule the verdict applies
    if not result.met:
        raise RecoveryFailure(result.reason)


@then("the recovery time is within the objective")
def rto_ok(drill):
    _objective("RTO", drill.outcome().rto_seconds, drill.settings.objectives.rto_seconds)


@then("the data loss is within the objective")
def rpo_ok(drill):
    rpo = drill.outcome().rpo
    _objective("RPO", rpo.worst if rpo else None, drill.settings.objectives.rpo_seconds)


# --- upgrades on the way back --------------------------------------------------------------


@given(parsers.parse("the platform runs Elasticsearch {version}"))
@args.checks_arguments(version=args.es_version)
def runs_elasticsearch(drill, version):
    drill.run_elasticsearch(version)


@when(parsers.parse("Elasticsearch {version} and PostgreSQL are redeployed"))
@args.checks_arguments(version=args.es_version)
def redeploy_version(drill, version):
    drill.deploy(es_version=version)
