"""The restore test of a platform's own backups, in place and without harm (features/
restore_test.feature): find the recovery points the platform's nightly job left, check their
integrity without relying on drdrill's checksum records, restore them into an isolated copy
(renamed indices, a scratch database), verify, measure, and leave nothing behind.

The restore is timed as a declared disaster: from the start of the runbook's step 3 to the
last verification, it is the RTO a real disaster would cost at today's data size. The RPO
bound is each tenant's backup exposure (the age of its newest complete recovery point).
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drdrill.adapters.pg_owned import tenant_rows
from drdrill.adapters.postgres import MetadataDb
from drdrill.backups import catalog
from drdrill.core import layout
from drdrill.core.backup_job import backup_job_findings
from drdrill.core.durations import format_duration
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.core.objectives import RpoResult, achieved_rto
from drdrill.core.points import nearest, pick
from drdrill.core.report import IndexResult, Problem
from drdrill.core.retention import retention_coverage
from drdrill.drill import checks as chk
from drdrill.drill.dumps import FetchedDump, check_dump, fetch_dump, load_dump, newest_dump
from drdrill.drill.headroom import check_headroom
from drdrill.drill.isolation import isolation_checks
from drdrill.drill.outcome import DrillOutcome
from drdrill.drill.restore import MetadataRestore, restore_copies, scratch_database_name
from drdrill.drill.restore_phase import RestoreParts, restore_test_notes
from drdrill.drill.restore_points import DumpPoint, Sandbox, TenantPoint, describe_points
from drdrill.drill.session import Session, step
from drdrill.drill.snapshot_restore import SnapshotRestore, TenantRestoreJob, restore_tenants
from drdrill.errors import (
    BackupIntegrityError,
    BackupJobUnhealthy,
    ConfigError,
    RestoreFailed,
    UsageError,
    VerificationFailed,
)

if TYPE_CHECKING:
    from drdrill.adapters.elasticsearch import IndexState
    from drdrill.adapters.platform import Platform

PHASES = frozenset({"recovery-points", "integrity", "restore-metadata", "restore-snapshots", "verify",
                    "verify-isolation", "backup-job"})
RETENTION_DAYS = 7  # the runbook keeps 7 days of backups


class RestoreTest(Session):
    platform_phases = PHASES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sandbox = self.target
        if not isinstance(sandbox, Sandbox):
            raise UsageError(f"the restore test runs on --target live, not on {self.target.name}",
                             hint="point a [target] table at the environment whose backups to test")
        self.sandbox: Sandbox = sandbox
        self.tenants: list[TenantPoint] = []
        self.dumps: dict[str, DumpPoint] = {}
        # The verified whole-database dump, still encrypted, kept for step 3.
        self.fetched: dict[str, FetchedDump] = {}
        self.scratch: MetadataDb | None = None
        self.owners = TenantIndices([])
        self.recorded_docs: dict[str, dict[str, int]] = {}
        self.metadata_restores: list[MetadataRestore] = []
        self.restored_rows: list[tuple[str, str, str]] = []
        # What the report lists per tenant: each restored index with its counts, and how long.
        self.index_results: dict[str, list[IndexResult]] = {}
        self.restore_seconds: dict[str, float] = {}
        self.snapshot_restores: list[SnapshotRestore] = []
        self.versions: dict[str, str] = {}
        self.notes: dict[str, Any] = {}
        self._fetch_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def rpo_s(self) -> float:
        return self.settings.objectives.rpo_seconds

    # --- 1. what the platform's nightly job left ------------------------------------------

    @step
    def find_recovery_points(self) -> None:
        with self.phase("recovery-points") as ph:
            platform = self.platform
            self.notes["target"] = self.sandbox.describe()
            self.versions.update(platform.cluster.compatibility(), postgres=platform.db.server_version())
            now = self.timeline.clock.wall()
            in_bucket = catalog.discover_tenants(platform.store)
            listed = self._tenant_list(platform.db, "the platform's tenant list", ph)
            if not in_bucket and not listed:
                raise RestoreFailed(f"no tenant snapshot repository in bucket {platform.store.bucket} and no tenant "
                                    "in the platform's tenant list",
                                    hint="expected <org>/<namespace>/ prefixes holding index.latest or index-N")
            anchor = self._anchor(platform, now)
            for tenant in sorted(set(in_bucket) | set(listed)):
                if tenant not in in_bucket:
                    self.fail_and_go_on(ph, RestoreFailed(
                        f"tenant {tenant} has no backup: {len(listed[tenant])} index(es) in the platform's tenant "
                        f"list, no snapshot repository at {tenant.repo_prefix} in bucket {platform.store.bucket}",
                        hint="is the tenant in the backup job's list?"))
                    self.tenants.append(TenantPoint(tenant, None, None, None))
                    continue
                if tenant not in listed:
                    self.problems.append(Problem(
                        "recovery-points", "warning", f"tenant path {tenant.repo_prefix} holds backups but no row "
                        "of the platform's tenant list names the tenant", "a deleted tenant's backups, or a "
                        "tenant the platform lost track of", {"scenario": self.scenario}))
                point = self._tenant_point(tenant, now, ph, anchor)
                if point is not None:
                    self.tenants.append(point)
            self._dump_points(platform, now, ph, anchor)
            self._retention(now)
            self.notes["headroom"] = check_headroom(platform, [(p.tenant, p.chosen) for p in self.tenants
                                                               if p.chosen is not None])
            self.notes["recovery_points"] = describe_points(self.tenants, self.dumps)

    def _tenant_list(self, db: MetadataDb, where: str, ph: Any) -> dict[Tenant, list[str]]:
        """The platform's tenants and their indices (the reference for which tenants need a
        recovery point); rows that name no valid tenant fail, named."""
        out: dict[Tenant, list[str]] = {}
        for org, namespace, index in tenant_rows(db, self.sandbox.settings.tenants_query):
            try:
                tenant = Tenant(org, namespace)
            except ConfigError as exc:
                self.fail_and_go_on(ph, RestoreFailed(f"{where} names a tenant drdrill cannot address: "
                                                      f"{org!r}/{namespace!r}: {exc.message}"))
                continue
            out.setdefault(tenant, []).append(index)
        return out

    def _anchor(self, platform: Platform, now: datetime) -> datetime | None:
        """The night whose backup set is restored: the chosen whole-database dump's time (None:
        the newest of everything, the default)."""
        policy = self.settings.restore_point
        dumps = sorted((e for e in catalog.metadata_entries(platform.store, layout.ALL_SCOPE)
                        if e.scope == layout.ALL_SCOPE and e.complete), key=lambda e: e.taken_at)
        chosen = pick([e.taken_at for e in dumps], policy, seed=self.drill_id, now=now,
                      window=timedelta(days=RETENTION_DAYS))
        self.notes["point"] = {"policy": policy, "seed": self.drill_id if policy == "random" else None,
                               "night": dumps[chosen].taken_at.isoformat() if chosen is not None else None,
                               "nights_in_window": len(dumps)}
        return None if policy == "newest" or chosen is None else dumps[chosen].taken_at

    def _tenant_point(self, tenant: Tenant, now: datetime, ph: Any, anchor: datetime | None) -> TenantPoint | None:
        try:
            entries = catalog.tenant_snapshots(self.platform.store, tenant)
        except BackupIntegrityError as exc:
            self.fail_and_go_on(ph, BackupIntegrityError(f"tenant {tenant}: {exc.message}", key=exc.key))
            return None
        newest_complete = chosen = catalog.newest_complete_snapshot(entries)
        if anchor is not None:  # the chosen night's: the complete snapshot nearest to its dump
            complete = [e for e in entries if e.complete]
            found = nearest([e.started_at for e in complete], anchor)
            chosen = complete[found] if found is not None else chosen
        newest = entries[-1] if entries else None
        hostile = [(i, layout.index_name_problem(i)) for i in (chosen.indices if chosen else ())]
        hostile = [(i, why) for i, why in hostile if why is not None]
        if hostile:  # read from the bucket: untrusted, never sent to Elasticsearch
            index, why = hostile[0]
            self.fail_and_go_on(ph, BackupIntegrityError(
                f"tenant {tenant}: snapshot {chosen.name if chosen else '?'} names an index that is not an "
                f"Elasticsearch index name: {index[:80]!r} {why}", hint="the repository at "
                f"{tenant.repo_prefix} holds something other than the platform's snapshots"))
            return TenantPoint(tenant, newest, None, None)
        if chosen is None:
            states = ", ".join(f"{e.name}={e.state}" for e in entries[-3:]) or "none at all"
            self.fail_and_go_on(ph, RestoreFailed(f"tenant {tenant} has no complete snapshot ({states})"))
            return TenantPoint(tenant, newest, None, None)
        assert newest_complete is not None  # there is a complete one: chosen is not None
        if newest is not None and newest is not newest_complete:
            self.fail_and_go_on(ph, RestoreFailed(
                f"the newest snapshot of tenant {tenant}, {newest.name}, is {newest.state}: the latest backup is "
                f"not a recovery point (the newest complete one is {newest_complete.name})",
                hint="check the backup job's log for that night"))
        # Backup exposure is the newest complete point's age, whichever point is restored.
        started = newest_complete.started_at
        exposure = (now - started).total_seconds() if started else None
        if exposure is None or exposure > self.rpo_s:
            age = format_duration(exposure) if exposure is not None else "of unknown age"
            self.fail_and_go_on(ph, RestoreFailed(
                f"tenant {tenant} has no complete snapshot within the RPO of {format_duration(self.rpo_s)}: "
                f"the newest, {newest_complete.name}, is {age} old",
                hint="has the nightly backup job run for this tenant?"))
        return TenantPoint(tenant, newest, chosen, exposure)

    def _dump_points(self, platform: Platform, now: datetime, ph: Any, anchor: datetime | None) -> None:
        listed = {o.key: o.etag for o in platform.store.list(layout.METADATA_PREFIX)}
        scopes = layout.metadata_scopes(p.tenant for p in self.tenants)
        for scope in scopes:
            try:
                entry = newest = newest_dump(platform, scope)
                if anchor is not None:  # the chosen night's dump of this scope
                    complete = [e for e in catalog.metadata_entries(platform.store, scope)
                                if e.scope == scope and e.complete]
                    found = nearest([e.taken_at for e in complete], anchor)
                    entry = complete[found] if found is not None else newest
            except RestoreFailed as exc:
                if scope == layout.ALL_SCOPE:
                    self.fail_and_go_on(ph, exc)
                else:
                    self.problems.append(Problem("recovery-points", "warning", f"organisation {scope}: {exc.message}",
                                                 evidence={"scenario": self.scenario}))
                continue
            exposure = (now - newest.taken_at).total_seconds()
            self.dumps[scope] = DumpPoint(entry, listed.get(entry.key, ""), exposure)
            if exposure > self.rpo_s:
                self.fail_and_go_on(ph, RestoreFailed(
                    f"the newest dump of {scope}, {newest.key}, is {format_duration(exposure)} old, beyond the RPO "
                    f"of {format_duration(self.rpo_s)}", hint="has the metadata backup job run?"))

    def _retention(self, now: datetime) -> None:
        """The runbook keeps 7 days: name the tenants missing a complete snapshot on a day."""
        tenants = [p.tenant for p in self.tenants]
        points = catalog.recovery_points(self.platform.store, [p.tenant for p in self.tenants if p.chosen],
                                         dumps=False)
        found = retention_coverage(points, now, RETENTION_DAYS, scopes=[("snapshot", t.key) for t in tenants])
        gaps = {c.scope: c.missing_days for c in found if c.missing_days}
        self.notes["retention"] = {"days": RETENTION_DAYS, "tenants_missing_days": gaps}
        if gaps:
            worst = max(gaps.values())
            self.problems.append(Problem(
                "recovery-points", "warning",
                f"{len(gaps)} tenant(s) lack a complete snapshot on some of the last {RETENTION_DAYS} days "
                f"(up to {worst} day(s) missing)", "the runbook keeps 7 days of nightly snapshots",
                {"scenario": self.scenario, "tenants": gaps}))

    # --- 2. are they what they claim ------------------------------------------------------

    @step
    def check_integrity(self) -> None:
        """Every chosen dump matches its checksum record (where one exists), decrypts whole and
        ends as its format ends, checked as a stream (no plaintext on disk); the encrypted
        whole-database dump is kept for step 3.

        A real recovery starts by fetching the dump: the declared disaster is marked here, so
        the RTO includes the download and the check of every dump."""
        self.timeline.mark_disaster(kind="restore test (declared)")
        with self.phase("integrity") as ph:
            self._fetch_dir = tempfile.TemporaryDirectory(prefix="drdrill-restore-test-", dir=self.workdir)
            for scope, point in self.dumps.items():
                into = Path(self._fetch_dir.name) / scope
                into.mkdir()
                try:
                    dump = fetch_dump(self.platform, point.entry.key, into, scope, progress=self.progress)
                    check_dump(dump, self.sandbox.dump_password, self.settings.kdf)
                except BackupIntegrityError as exc:
                    self.fail_and_go_on(ph, exc)
                    continue
                self.notes.setdefault("integrity", []).append(
                    {"key": dump.key, "sha256": dump.sha256, "checksum_verified": dump.checksum_verified,
                     "notes": dump.notes})
                if scope == layout.ALL_SCOPE:
                    self.fetched[scope] = dump
                    self.metadata_restores.append(MetadataRestore(
                        scope, dump.key, dump.sha256, dump.size_bytes, dump.checksum_verified,
                        self.settings.kdf.describe(), self.settings.kdf.is_weak, 0.0, dump.notes, dump.encryption))
                else:
                    dump.cipher.unlink()

    # --- 3-4. restore into an isolated copy -----------------------------------------------

    @step
    def restore_metadata(self) -> None:
        with self.phase("restore-metadata") as ph:
            dump = self.fetched.get(layout.ALL_SCOPE)
            if dump is None:
                raise RestoreFailed("no verified whole-database dump to restore")
            started = self.timeline.clock.monotonic()
            try:
                self.scratch = self.sandbox.scratch_db(self.platform, scratch_database_name(self.drill_id))
                load_dump(self.scratch, dump, self.sandbox.dump_password, self.settings.kdf,
                          timeout_s=self.settings.wait_budget_s)
            finally:
                self._drop_fetched()
            self.metadata_restores[0].seconds = self.timeline.clock.monotonic() - started
            restored = self._tenant_list(self.scratch, "the restored dump's tenant list", ph)
            self.restored_rows = [(t.org_id, t.namespace, i) for t, indices in restored.items() for i in indices]
            self.owners = TenantIndices(self.restored_rows)
            if self.sandbox.settings.tenants_query is None:
                for org, ns, index, docs in self.scratch.container_rows():
                    if docs is not None:
                        self.recorded_docs.setdefault(f"{org}/{ns}", {})[index] = docs
            known = {p.tenant for p in self.tenants}
            for tenant in sorted(set(restored) - known):
                self.fail_and_go_on(ph, RestoreFailed(
                    f"tenant {tenant} has no backup: {len(restored[tenant])} index(es) in the restored dump's tenant "
                    f"list, no snapshot repository at {tenant.repo_prefix}", hint="is the tenant in the backup "
                    "job's list?"))
                self.tenants.append(TenantPoint(tenant, None, None, None))

    @step
    def restore_snapshots(self) -> None:
        with self.phase("restore-snapshots") as ph:
            platform, prefix = self.platform, self.sandbox.prefix
            if platform.repo_root is not None:
                self.sandbox.track_created(directories=[restore_copies(platform.repo_root, self.drill_id)])
            jobs = []
            for point in self.tenants:
                if point.chosen is None:
                    continue
                repository = f"{prefix}{point.tenant.org_id}.{point.tenant.namespace}"
                self.sandbox.track_created(repositories=[repository],
                                           indices=[prefix + index for index in point.chosen.indices])
                jobs.append(TenantRestoreJob(point.tenant, point.chosen.name, repository,
                                             mark=self.sandbox.mark.to_dict(),
                                             copy_replicas=self.settings.restore_test_replicas))
            parts = RestoreParts(self.timeline, platform.cluster, self.scenario)
            outcome = restore_tenants(platform, jobs, self.drill_id, self.owners, timeout_s=self.settings.wait_budget_s,
                                      concurrency=self.settings.restore_concurrency, rename_prefix=prefix,
                                      progress=self.progress, on_primaries=parts.primaries_started)
            parts.finish(outcome)
            self.snapshot_restores += outcome.restored
            # The copies are isolated: no lifecycle policy, no alias, and [restore_test] replicas
            # replicas (by default none).
            self.notes["restore"] = restore_test_notes(outcome, self.settings.restore_test_replicas)
            for _tenant, failure in outcome.failed:
                self.fail_and_go_on(ph, failure)

    # --- 5. verify ------------------------------------------------------------------------

    @step
    def verify(self) -> None:
        with self.phase("verify"):
            self.checks = [c for c in self.checks if c.evidence.get("isolation")] + self._gather_checks()
            failed = [c for c in self.checks if not c.passed]
            if failed:
                raise VerificationFailed(f"{len(failed)} of {len(self.checks)} checks failed: "
                                         + "; ".join(f"{c.name}: {c.detail}" for c in failed[:3]))
            if any(p.kind == "failed" for p in self.problems):
                # Part of the platform cannot be recovered: there is no T_recovered to measure.
                self.timeline.event("recovery-incomplete", failed=[p.summary for p in self.problems
                                                                   if p.kind == "failed"][:10])
                return
            self.timeline.mark_recovered(checks=len(self.checks))

    @step
    def check_isolation(self) -> None:
        """The tenants' own backup credentials that [target] names, read only: each lists and
        reads its own path and is refused every other tenant's and metadata/. With none named
        the promise stays "not evidenced" (a note says why), never passed."""
        with self.phase("verify-isolation"):
            stores = self.sandbox.tenant_stores([p.tenant for p in self.tenants])
            if not stores:
                self.notes["isolation"] = "no tenant credentials named in [target] (tenant_credentials)"
                return
            found = isolation_checks(self.platform.store, stores, read_only=True)
            self.checks += found
            failed = [c for c in found if not c.passed]
            if failed:
                raise VerificationFailed(f"tenant isolation does not hold: {failed[0].name}: {failed[0].detail}")

    @step
    def check_backup_job(self) -> None:
        """The nightly backup job as its scheduler records it (Kubernetes: the CronJob and its
        Jobs): suspended, its newest run failed or no success within the RPO fail the drill; an
        older failed run is a warning. Without Kubernetes in [target] it is not read (a note)."""
        with self.phase("backup-job"):
            health = self.sandbox.backup_job
            if health is None:
                self.notes["backup_job"] = "no Kubernetes in [target]: the backup job's own record was not read"
                return
            self.notes["backup_job"] = health.to_dict()
            findings = backup_job_findings(health, self.timeline.clock.wall(), self.rpo_s)
            for finding in findings:
                if finding.kind == "warning":
                    self.problems.append(Problem("backup-job", "warning", finding.summary, finding.diagnosis or None))
            failed = [f for f in findings if f.kind == "failed"]
            if failed:
                raise BackupJobUnhealthy(failed[0].summary, diagnosis=failed[0].diagnosis,
                                         hint="; ".join(f.summary for f in failed[1:]) or None)

    def _gather_checks(self) -> list[chk.Check]:
        platform, prefix = self.platform, self.sandbox.prefix
        if self.scratch is None:
            raise RestoreFailed("the metadata database was not restored: nothing to verify against")
        out: list[chk.Check] = []
        restored = {r.tenant: r for r in self.snapshot_restores}
        observed = platform.cluster.indices_named([i for r in self.snapshot_restores for i in r.restored_as])
        # The live indices' counts at the time: context for the copies' (the platform keeps writing).
        live = platform.cluster.indices_named([i for r in self.snapshot_restores for i in r.indices])
        rows = self.restored_rows
        for point in self.tenants:
            done = restored.get(point.tenant.key)
            if done is None:
                continue
            copies = {index: observed.get(prefix + index) for index in done.indices}
            recorded = self.recorded_docs.get(point.tenant.key, {})
            self.index_results[point.tenant.key] = [
                IndexResult(index, recorded.get(index), _docs(copies[index]), _docs(live.get(index)))
                for index in done.indices]
            self.restore_seconds[point.tenant.key] = round(done.fetch_seconds + done.restore_seconds, 3)
            out.extend(chk.check_indices(point.tenant.key, {i: recorded[i] for i in done.indices if i in recorded},
                                         {i: chk.IndexObservation(s.health, s.docs)
                                          for i, s in copies.items() if s is not None}))
            for index in done.indices:
                state = copies[index]
                if index not in recorded:  # no count to compare with: health and existence only
                    out.append(chk.Check(f"index {index} is green", state is not None and state.health == "green",
                                         f"health {state.health if state else 'missing'}", point.tenant.key))
            tenant_rows = [r for r in rows if (r[0], r[1]) == (point.tenant.org_id, point.tenant.namespace)]
            out.extend(_renamed(chk.check_cross_store(tenant_rows, set(done.indices), {point.tenant.key}),
                                point.tenant))
        self.notes["runbook_checks"] = {
            "SELECT COUNT(*) FROM tenant_containers": self.scratch.table_count() if
            self.sandbox.settings.tenants_query is None else len(rows),
            "_cat/indices": {name: {"health": s.health, "docs.count": s.docs} for name, s in observed.items()},
        }
        unrecorded = [p.tenant.key for p in self.tenants if p.chosen and p.tenant.key not in self.recorded_docs]
        if unrecorded:
            self.notes["counts_not_recorded"] = unrecorded
        return out

    # --- measurement and clean-up ---------------------------------------------------------

    def _drop_fetched(self) -> None:
        if self._fetch_dir is not None:
            self._fetch_dir.cleanup()
            self._fetch_dir = None
        self.fetched.clear()

    def stop_canaries(self) -> None:
        """No canaries here; the fetched dump must not outlive the scenario either."""
        self._drop_fetched()

    def outcome(self) -> DrillOutcome:
        window = self.timeline.recovery_window()
        rto = None
        if window is not None and window[1] is not None:
            rto = achieved_rto(window[0].offset, window[1].offset)
        by_store: dict[tuple[str, str], float] = {}
        for point in self.tenants:
            if point.exposure_s is not None:
                by_store[(point.tenant.key, "elasticsearch")] = point.exposure_s
            dump = self.dumps.get(point.tenant.org_id) or self.dumps.get(layout.ALL_SCOPE)
            if dump is not None:
                by_store[(point.tenant.key, "postgres")] = dump.exposure_s
        by_tenant: dict[str, float] = {}
        for (tenant, _store), seconds in by_store.items():
            by_tenant[tenant] = max(seconds, by_tenant.get(tenant, 0.0))
        rpo = RpoResult(by_store, by_tenant, max(by_store.values()) if by_store else None)
        complete = [p for p in self.tenants if p.chosen is not None]
        return DrillOutcome(
            scenario=self.scenario, objectives=self.settings.objectives, timeline=self.timeline,
            problems=list(self.problems), checks=list(self.checks), backup=None,
            metadata_restores=list(self.metadata_restores), snapshot_restores=list(self.snapshot_restores),
            expected_docs={p.tenant.key: self.recorded_docs.get(p.tenant.key, {}) for p in complete},
            rpo=rpo, rto_seconds=rto, exposure_seconds=rpo.worst, tenants=[p.tenant for p in self.tenants],
            kdf=self.settings.kdf, versions=dict(self.versions), harness_error=any(
                p.kind == "error" for p in self.problems), uncertain=False, expected_failure=self.expect_failure,
            expectation_checked=self.expectation_checked, notes={"restore_test": self.notes},
            index_results=dict(self.index_results), tenant_restore_seconds=dict(self.restore_seconds),
        )


def _docs(state: IndexState | None) -> int | None:
    return state.docs if state is not None else None


def _renamed(checks: list[chk.Check], tenant: Tenant) -> list[chk.Check]:
    """Cross-store checks named per tenant (a restore test checks each tenant on its own)."""
    return [chk.Check(f"{c.name} ({tenant})", c.passed, c.detail, tenant.key, c.evidence) for c in checks]

