"""Steps of the restore test of the platform's own backups (``--target live``): each parses
its words, calls drdrill.drill.restore_test, and lets the ``restore_test`` fixture carry state."""

from __future__ import annotations

from pytest_bdd import given, then, when

from drdrill.core.objectives import ObjectiveCheck
from drdrill.drill.checks import require
from drdrill.errors import RecoveryFailure


@given("the platform's newest recovery points are found")
def restore_test_find_points(restore_test):
    restore_test.find_recovery_points()


@given("their integrity is checked without relying on checksum records")
def restore_test_integrity(restore_test):
    restore_test.check_integrity()


@when("the newest metadata dump is restored into a scratch database")
def restore_test_restore_dump(restore_test):
    restore_test.restore_metadata()


@when("every tenant's newest snapshot is restored beside the live indices")
def restore_test_restore_snapshots(restore_test):
    restore_test.restore_snapshots()


@when("the restored copy is verified")
def restore_test_verify(restore_test):
    restore_test.verify()


@then("every restored index is green with the documents the platform recorded")
def restore_test_indices_ok(restore_test):
    require(restore_test.checks, ("is green", "document count", "exists"))


@then("every restored row has its index in the tenant's snapshot and every index its row")
def restore_test_cross_store_ok(restore_test):
    require(restore_test.checks, ("every tenant row", "every restored index"))


@then("every tenant has a complete recovery point within the objective")
def restore_test_exposure_ok(restore_test):
    rpo = restore_test.outcome().rpo
    result = ObjectiveCheck("backup exposure", rpo.worst if rpo else None,
                            restore_test.settings.objectives.rpo_seconds)
    if not result.met:
        raise RecoveryFailure(result.reason)
    failed = [p.summary for p in restore_test.problems if p.kind == "failed"]
    if failed:
        raise RecoveryFailure(f"{len(failed)} recovery point(s) unusable: {failed[0]}")


@then("the restore time is within the objective")
def restore_test_restore_time_ok(restore_test):
    result = ObjectiveCheck("restore time (RTO)", restore_test.outcome().rto_seconds,
                            restore_test.settings.objectives.rto_seconds)
    if not result.met:
        raise RecoveryFailure(result.reason)


@then("each tenant's own backup credentials named in the settings reach only its own path")
def restore_test_isolation(restore_test):
    restore_test.check_isolation()


@then("the platform's nightly backup job is healthy where its scheduler can be read")
def restore_test_backup_job(restore_test):
    restore_test.check_backup_job()
