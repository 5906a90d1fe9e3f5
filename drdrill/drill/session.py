"""One drill scenario against one target: prepare, back up, disaster, recover, verify.

Each step is a timed phase; every failure becomes a problem with a diagnosis. What the
recovered services hold is judged in :mod:`drdrill.drill.verification`, and the scenario's
figures are computed in :mod:`drdrill.drill.measurement`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from drdrill.adapters import crypto
from drdrill.adapters.platform import Platform
from drdrill.adapters.s3 import ObjectStore
from drdrill.backups.seed import seed_tenant
from drdrill.backups.take import BackupSetResult
from drdrill.core import layout
from drdrill.core.clock import Clock, SystemClock
from drdrill.core.layout import Tenant, TenantIndices, check_unambiguous
from drdrill.core.report import Problem, ProblemKind
from drdrill.core.timeline import Phase, Timeline
from drdrill.drill import checks as chk
from drdrill.drill import verification
from drdrill.drill.canary import STORES, CanaryLog, CanaryWriter, canary_index
from drdrill.drill.diagnosis import Diagnosis, diagnose
from drdrill.drill.isolation import isolation_checks
from drdrill.drill.measurement import measure
from drdrill.drill.nightly import apply_policy, coverage, coverage_checks, past_nights, run_nights
from drdrill.drill.outcome import DrillOutcome
from drdrill.drill.restore import MetadataRestore, restore_metadata, restore_tenant_rows
from drdrill.drill.restore_phase import RestoreParts
from drdrill.drill.snapshot_restore import SnapshotRestore, TenantRestoreJob, TenantRestores, restore_tenants
from drdrill.errors import (
    DrdrillError,
    HarnessError,
    RecoveryFailure,
    RestoreFailed,
    ServiceError,
    UsageError,
    VerificationFailed,
    is_service_failure,
)
from drdrill.host.readiness import wait_for
from drdrill.settings import DrillSettings
from drdrill.targets.base import SITE_SERVICES, DrillTarget, SwitchesTraffic

log = logging.getLogger(__name__)

PLATFORM_PHASES = frozenset({"backup", "deploy-services", "restore-metadata", "operator-settings",
                             "restore-snapshots", "verify", "verify-isolation",
                             "retention", "verify-retention", "switch-traffic"})
DISASTERS = {"site loss": SITE_SERVICES, "metadata loss": ["postgres"]}


def step(method: Callable[..., None]) -> Callable[..., None]:
    """A session's step. After a failure in a session that expects one (a fault scenario),
    later steps are skipped, and counted as skipped, instead of run on a broken platform."""
    @functools.wraps(method)
    def wrapper(self: Session, *args: object, **kwargs: object) -> None:
        if self.halted:
            log.info("skipping %s: an earlier step failed", method.__name__)
            self.steps_skipped += 1
            return
        try:
            method(self, *args, **kwargs)
        except UsageError:
            raise  # bad input is never an expected failure
        except DrdrillError:
            if not self.expect_failure:
                raise
            self.halted = True
    return wrapper


class Session:
    """One scenario on one target: timed phases whose failures are diagnosed and recorded as
    problems, fault arming, and step bookkeeping. Constructing one does no I/O."""

    # Phases where a service that fails is the platform failing to recover (not the harness).
    platform_phases: frozenset[str] = PLATFORM_PHASES

    def __init__(self, target: DrillTarget, settings: DrillSettings, *, drill_id: str, scenario: str,
                 clock: Clock | None = None, timeline: Timeline | None = None,
                 workdir: Path | None = None) -> None:
        self.target, self.settings = target, settings
        self.drill_id, self.scenario = drill_id, scenario
        # Scenarios of one run share a timeline, so the report draws them against one origin.
        self.timeline = timeline or Timeline(clock or SystemClock())
        self.workdir = workdir
        self.problems: list[Problem] = []
        self.checks: list[chk.Check] = []
        self._platform: Platform | None = None
        self._armed: dict[str, list[Callable[[], None]]] = {}
        # Fault scenarios expect the recovery to fail and then check the diagnosis.
        self.expect_failure = False
        self.expectation_checked = False
        self.halted = False
        self.steps_skipped = 0
        # Where long work says how far it got (the terminal, or the log).
        self.progress: Callable[[str], None] = lambda message: log.info("%s", message)

    def outcome(self) -> DrillOutcome:
        raise NotImplementedError

    def stop_canaries(self) -> None:
        """Nothing runs in the background of a plain session."""

    # --- plumbing ------------------------------------------------------------------------

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = self.target.platform(request_timeout_s=self.settings.request_timeout_s)
        return self._platform

    def reconnect(self) -> None:
        """Forget the clients: the next use connects afresh (e.g. after credentials changed)."""
        if self._platform is not None:
            self._platform.close()
        self._platform = None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        """A timed phase; a failure is diagnosed, recorded as a problem and re-raised.

        In the platform's own phases, a service that fails (unreachable, refusing, timing out)
        is the platform failing to recover, as the runbook would have failed at that step; it
        is a harness error only outside them (e.g. starting the local target)."""
        try:
            with self.timeline.phase(name, detail=self.scenario) as ph:
                self._fire(name)
                try:
                    yield ph
                except ServiceError as exc:
                    if name not in self.platform_phases:
                        raise
                    raise RestoreFailed(exc.message, hint=exc.hint) from exc
                except (DrdrillError, KeyboardInterrupt):
                    raise
                except Exception as exc:
                    if name in self.platform_phases and is_service_failure(exc):
                        raise RestoreFailed(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
                    raise
        except DrdrillError as exc:
            self._record_problem(name, exc, exc)
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            self.problems.append(Problem(name, "error", f"{type(exc).__name__}: {exc}",
                                         "an unexpected error inside drdrill (a bug): see the log",
                                         {"scenario": self.scenario}))
            raise

    def _record_problem(self, phase: str, failure: DrdrillError, original: BaseException) -> None:
        kind: ProblemKind = "failed" if isinstance(failure, RecoveryFailure) else "error"
        try:
            found = diagnose(self._platform_or_none(), self.target, phase, original)
        except Exception as exc:
            found = Diagnosis(failure.message, f"diagnosis itself failed: {exc}")
        evidence: dict[str, object] = {**_evidence_of(failure), "scenario": self.scenario,
                                       "probes": [p.to_dict() for p in found.probes]}
        if found.failed_probe is not None:
            evidence["failed_probe"] = found.failed_probe.to_dict()
        if failure.hint:
            evidence["hint"] = failure.hint
        self.problems.append(Problem(phase, kind, failure.message, found.text, evidence))

    def _platform_or_none(self) -> Platform | None:
        try:
            return self.platform
        except DrdrillError:
            return None

    # --- fault injection -----------------------------------------------------------------

    def arm(self, phase: str, action: Callable[[], None]) -> None:
        """Run ``action`` as ``phase`` begins (a fault that must strike during a step)."""
        self._armed.setdefault(phase, []).append(action)

    def _fire(self, phase: str) -> None:
        for action in self._armed.pop(phase, []):
            action()

    def fail_and_go_on(self, phase: Phase, failure: RecoveryFailure) -> None:
        """Part of a phase failed (one tenant of several): record it, diagnosed, and go on with
        the rest, so the others' results are reported too. The phase ends as failed."""
        self._record_problem(phase.name, failure, failure)
        phase.fail(failure.message)


class Drill(Session):
    """A runbook drill: seed, back up, disaster, recover, verify. No I/O until a step runs."""

    def __init__(self, target: DrillTarget, settings: DrillSettings, *, drill_id: str, scenario: str,
                 clock: Clock | None = None, timeline: Timeline | None = None,
                 workdir: Path | None = None) -> None:
        super().__init__(target, settings, drill_id=drill_id, scenario=scenario, clock=clock, timeline=timeline,
                         workdir=workdir)
        self.backup: BackupSetResult | None = None
        # Every night's backup set when the scenario simulates several (the last is self.backup).
        self.nightly_backups: list[BackupSetResult] = []
        # For the report's evidence (e.g. what retention kept).
        self.notes: dict[str, Any] = {}
        self.expected_docs: dict[str, dict[str, int]] = {}
        self.expected_rows: dict[str, int] = {}
        # The platform's tenant → index map as it stood before the disaster.
        self.owners: TenantIndices = TenantIndices([])
        self.canary: CanaryWriter | None = None
        self.canary_log: CanaryLog | None = None
        self.metadata_restores: list[MetadataRestore] = []
        self.snapshot_restores: list[SnapshotRestore] = []
        self.disaster_kind: str | None = None
        self.versions: dict[str, str] = {}
        self.lost_tenants: list[Tenant] = []
        self.recovery_throttle: str | None = None
        # How the tenants were restored (concurrency, wall time), and Elasticsearch's limits then.
        self.restore_runs: list[TenantRestores] = []
        self.restore_limits: dict[str, str] = {}
        self.restore_limits_changed: dict[str, str] = {}
        self.bystanders: dict[str, object] = {}
        # Each tenant's own credentials for the backup store, which its backup uses.
        self.tenant_stores: dict[Tenant, ObjectStore] = {}
        # A password generated per drill for the dumps it makes; never printed or reported.
        self._password = secrets.token_urlsafe(24).encode()
        # What the restore side uses; the same unless a fault says the operator got it wrong.
        self.restore_password: bytes = self._password
        self.restore_kdf: crypto.KdfSpec | None = None

    # --- steps ---------------------------------------------------------------------------

    def _check_tenants(self) -> None:
        """Before anything is written: tenants whose index names would collide, or that already
        have backups in the store (a drill never writes into existing repositories)."""
        tenants = self.settings.tenants
        check_unambiguous(tenants)
        clash = sorted({t.key for t in tenants for k in self.target.protected if k.startswith(t.repo_prefix)})
        if clash:
            raise UsageError(f"tenant(s) {', '.join(clash)} already have backups in the store",
                             hint="a drill backs up its own tenants and never writes into existing repositories")

    @step
    def prepare(self) -> None:
        self._check_tenants()
        with self.phase("prepare"):
            platform = self.platform
            platform.store.ensure_bucket()
            platform.db.ensure_schema()
            for tenant in self.settings.tenants:
                result = seed_tenant(platform.cluster, platform.db, tenant, self.settings.data)
                self.expected_docs[tenant.key] = dict(result.docs_by_index)
            self.canary = CanaryWriter(platform.cluster, platform.db, self.settings.tenants,
                                       interval_s=self.settings.canary_interval_s,
                                       write_timeout_s=self.settings.request_timeout_s)
            self.canary.prepare()
            for tenant in self.settings.tenants:
                # The canary index is the tenant's like any other: its row says so.
                platform.db.add_container_row(tenant.org_id, tenant.namespace, "canary", canary_index(tenant))
            self.owners = TenantIndices(platform.db.containers_index_names())
            self.tenant_stores = self.target.tenant_stores(self.settings.tenants)
            self.canary.start()
            self.versions.update(platform.cluster.compatibility(), postgres=platform.db.server_version())

    @step
    def take_backup(self, nights: int = 1) -> None:
        """The nightly backup; with ``nights`` > 1, the job on each of the last nights (its clock
        injected: the names carry the night), the newest (now) being the one a recovery uses."""
        with self.phase("backup"):
            platform = self.platform
            rows = platform.db.row_counts()
            self.expected_rows = {f"{org}/{ns}": n for (org, ns), n in rows.items()}
            self.owners = TenantIndices(platform.db.containers_index_names())
            for tenant in self.settings.tenants:
                observed = platform.cluster.indices_named(list(self.expected_docs[tenant.key]))
                for index, docs in self.expected_docs[tenant.key].items():
                    if index not in observed or observed[index].docs != docs:
                        raise HarnessError(f"{index} holds {observed.get(index)} before the backup, seeded {docs}")
            self._await_first_canaries()
            now = self.timeline.clock.wall()
            times = past_nights(now, nights)
            scopes = layout.metadata_scopes(self.settings.tenants)
            keys = [layout.metadata_key(scope, at) for scope in scopes for at in times]
            self.target.track_written(keys=keys + [layout.checksum_key(k) for k in keys],
                                      prefixes=[t.repo_prefix for t in self.settings.tenants])
            self.nightly_backups = run_nights(platform, self.settings.tenants, times, self._password,
                                              kdf=self.settings.kdf, timeout_s=self.settings.wait_budget_s,
                                              tenant_stores=self.tenant_stores, progress=self.progress)
            self.backup = self.nightly_backups[-1]
        if self.settings.post_backup_s > 0:
            time.sleep(self.settings.post_backup_s)

    @step
    def apply_retention(self, keep_days: int) -> None:
        """The job's retention over the nights this drill backed up (nothing else is considered)."""
        with self.phase("retention"):
            deleted = apply_policy(self.platform, self.settings.tenants, self.nightly_backups,
                                   self.timeline.clock.wall(), keep_days)
            self.notes["retention_deleted"] = len(deleted)

    @step
    def check_retention(self, keep_days: int) -> None:
        """What the store holds of those nights: a point on each day of the window, none older."""
        with self.phase("verify-retention"):
            found = coverage(self.platform, self.settings.tenants, self.nightly_backups,
                             self.timeline.clock.wall(), keep_days)
            checks = coverage_checks(found, keep_days)
            self.checks += checks
            self.notes["retention"] = {
                "days": keep_days, "simulated_nights": len(self.nightly_backups),
                "tenants_missing_days": {c.label: c.missing_days for c in found if c.missing_days},
                "older_than_policy": {c.label: list(c.older) for c in found if c.older}}
            failed = [c for c in checks if not c.passed]
            if failed:
                raise VerificationFailed(f"retention does not hold: {failed[0].name}: {failed[0].detail}")

    def _await_first_canaries(self, timeout_s: float = 15) -> None:
        """The backup must hold canaries to measure RPO against: wait (bounded) until every
        tenant has one acknowledged in each store."""
        canary = self.canary
        if canary is None:
            return
        keys = [(t.key, store) for t in self.settings.tenants for store in STORES]

        def started() -> tuple[bool, str]:
            if canary.log.errors:
                raise HarnessError(f"canary writes failed: {'; '.join(canary.log.errors[:2])}")
            waiting = [f"{k[0]} {k[1]}" for k in keys if not canary.log.acked.get(k)]
            return not waiting, f"no write acknowledged yet for {', '.join(waiting[:3])}"
        wait_for("canary writes", started, timeout_s=timeout_s, interval_s=0.05)

    def stop_canaries(self) -> None:
        if self.canary is not None and self.canary_log is None:
            self.canary_log = self.canary.stop()

    @step
    def disaster(self, kind: str) -> None:
        if kind not in DISASTERS:
            raise UsageError(f"unknown disaster {kind!r}", hint=f"expected one of {', '.join(DISASTERS)}")
        self.disaster_kind = kind
        with self.phase("disaster"):
            self.stop_canaries()
            self.timeline.mark_disaster(kind=kind)
            self.target.destroy(DISASTERS[kind])

    @step
    def tenant_disaster(self, tenant: Tenant) -> None:
        """One tenant's data is destroyed (its indices and rows); the others must not notice."""
        if tenant not in self.settings.tenants:
            raise UsageError(f"tenant {tenant} is not one of this drill's tenants",
                             hint=f"expected one of {', '.join(t.key for t in self.settings.tenants)}")
        self.disaster_kind = "tenant loss"
        self.lost_tenants = [tenant]
        with self.phase("disaster"):
            self.stop_canaries()
            bystanders = [t for t in self.settings.tenants if t != tenant]
            self.bystanders = verification.tenant_fingerprints(self.platform, self.owners, bystanders)
            self.timeline.mark_disaster(kind="tenant loss", tenant=tenant.key)
            for index in self.owners.indices_of(tenant):
                self.platform.cluster.delete_indices(index)
            self.platform.db.delete_tenant_rows(tenant.org_id, tenant.namespace)

    def check_untouched(self, tenant: Tenant) -> None:
        """Asserts the bystander check made during verification (before T_recovered)."""
        if tenant.key not in self.bystanders:
            raise UsageError(f"tenant {tenant} was not a bystander of this drill's disaster")
        found = [c for c in self.checks if c.name == f"tenant {tenant} untouched"]
        if not found:
            raise VerificationFailed(f"tenant {tenant} was not verified (is 'data integrity is verified' missing?)")
        if not found[0].passed:
            raise VerificationFailed(f"tenant {tenant} was changed by another tenant's recovery")

    @step
    def restore_tenant_rows(self, tenant: Tenant) -> None:
        with self.phase("restore-metadata"):
            self.metadata_restores.append(restore_tenant_rows(
                self.platform, tenant, self.restore_password, self.restore_kdf or self.settings.kdf,
                drill_id=self.drill_id, workdir=self.workdir, timeout_s=self.settings.wait_budget_s))

    @step
    def deploy(self, es_version: str | None = None) -> None:
        """Runbook steps 1-2: fresh services where the destroyed ones were (``es_version``:
        another Elasticsearch, e.g. the next major, as a recovery may bring)."""
        with self.phase("deploy-services"):
            services = DISASTERS[self.disaster_kind or "site loss"]
            if es_version is None:
                self.target.redeploy(services)
            else:
                self.target.redeploy(services, es_version=es_version)
                self.reconnect()
                recovered = self.platform.cluster.compatibility()
                self.versions["elasticsearch (recovered into)"] = recovered["elasticsearch"]

    @step
    def run_elasticsearch(self, es_version: str) -> None:
        """Before anything else: the platform runs this Elasticsearch (an empty one)."""
        with self.phase("deploy-services"):
            self.target.redeploy(["elasticsearch"], es_version=es_version)
            self.reconnect()

    @step
    def restore_metadata(self, scope: str = layout.ALL_SCOPE) -> None:
        with self.phase("restore-metadata"):
            self.metadata_restores.append(
                restore_metadata(self.platform, scope, self.restore_password, self.restore_kdf or self.settings.kdf,
                                 workdir=self.workdir, timeout_s=self.settings.wait_budget_s))

    @step
    def set_recovery_throttle(self, value: str) -> None:
        """What the runbook's operator may do before restoring: raise Elasticsearch's recovery
        throttle. Recorded as the scenario's change, beside the value it replaced."""
        with self.phase("operator-settings"):
            cluster = self.platform.cluster
            before = cluster.recovery_throttle()
            cluster.set_recovery_throttle(value)
            self.restore_limits_changed[cluster.RECOVERY_THROTTLE] = f"{before} -> {value} (set by the scenario)"

    @step
    def restore_snapshots(self, tenants: list[Tenant] | None = None) -> None:
        with self.phase("restore-snapshots") as ph:
            cluster = self.platform.cluster
            limits = cluster.effective_settings(cluster.RECOVERY_THROTTLE, cluster.INITIAL_PRIMARIES)
            self.recovery_throttle = limits.get(cluster.RECOVERY_THROTTLE)
            parts = RestoreParts(self.timeline, cluster, self.scenario)
            outcome = restore_tenants(
                self.platform, [TenantRestoreJob(t) for t in tenants or self.settings.tenants], self.drill_id,
                self.owners, timeout_s=self.settings.wait_budget_s, concurrency=self.settings.restore_concurrency,
                progress=self.progress, on_primaries=parts.primaries_started)
            parts.finish(outcome)
            self.snapshot_restores += outcome.restored
            self.restore_runs.append(outcome)
            self.restore_limits = limits
            # Every tenant's failure is reported; the phase fails with the first.
            for _tenant, failure in outcome.failed[1:]:
                self.fail_and_go_on(ph, failure)
            if outcome.failed:
                raise outcome.failed[0][1]

    @step
    def check_isolation(self) -> None:
        """Each tenant's own backup credentials, tried on its path, every other tenant's path
        and metadata/: the runbook's path isolation, proven on the real store."""
        with self.phase("verify-isolation"):
            if not self.tenant_stores:
                raise UsageError(f"the {self.target.name} target gives tenants no credentials of their own",
                                 hint="tenant isolation is checked on the local target")
            found = isolation_checks(self.platform.store, self.tenant_stores)
            self.checks += found
            failed = [c for c in found if not c.passed]
            if failed:
                raise VerificationFailed(f"tenant isolation does not hold: {failed[0].name}: {failed[0].detail}")

    @step
    def verify(self, *, metadata_only: bool = False) -> None:
        with self.phase("verify"):
            self.checks = [c for c in self.checks if c.evidence.get("isolation") or c.evidence.get("retention")] + \
                verification.gather_checks(self, metadata_only)
            failed = [c for c in self.checks if not c.passed]
            if failed:
                raise VerificationFailed(f"{len(failed)} of {len(self.checks)} checks failed: "
                                         + "; ".join(f"{c.name}: {c.detail}" for c in failed[:3]))
        if isinstance(self.target, SwitchesTraffic) and self.target.traffic_held:
            self.switch_traffic(self.target)
        self.timeline.mark_recovered(checks=len(self.checks))

    def switch_traffic(self, target: SwitchesTraffic) -> None:
        """Runbook step 6, where the target holds the platform's traffic away from the workload
        being restored (Kubernetes: its Service): the switch back, done when a read through it
        returns restored data. Part of the RTO (T_recovered follows it)."""
        with self.phase("switch-traffic"):
            restored = sorted(i for r in self.snapshot_restores for i in r.restored_as)
            if not restored:
                raise VerificationFailed("nothing was restored to switch traffic to")
            # The restored index with the most documents: a read that only restored data answers.
            states = self.platform.cluster.indices_named(restored)
            if not states:
                raise VerificationFailed("the restored indices are gone before the traffic switch")
            probe, state = max(states.items(), key=lambda item: (item[1].docs or 0, item[0]))
            self.notes["traffic_switch"] = target.switch_traffic(probe, state.docs or 0)

    # --- measurement ---------------------------------------------------------------------

    def outcome(self) -> DrillOutcome:
        """Measure from the timeline (pure functions) and collect the scenario's results."""
        return measure(self)


def _evidence_of(exc: DrdrillError) -> dict[str, object]:
    evidence: dict[str, object] = {"error": type(exc).__name__}
    for attr in ("key", "service", "last_state"):
        value = getattr(exc, attr, None)
        if value:
            evidence[attr] = value
    return evidence
