"""What one scenario established (:class:`DrillOutcome`, for the report), and what measuring and
verifying a runbook drill read of it (:class:`DrillRecord`): the bottom of ``drdrill.drill``, so
that the session, its measurement and its verification need not import one another."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from drdrill.adapters import crypto
from drdrill.backups.take import BackupSetResult
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.core.objectives import Objectives, RpoResult
from drdrill.core.report import IndexResult, Problem
from drdrill.core.timeline import Timeline
from drdrill.drill import checks as chk
from drdrill.drill.restore import MetadataRestore
from drdrill.drill.snapshot_restore import SnapshotRestore, TenantRestores

if TYPE_CHECKING:
    from drdrill.adapters.platform import Platform
    from drdrill.drill.canary import CanaryLog
    from drdrill.settings import DrillSettings


@dataclass
class DrillOutcome:
    """What one scenario established, for the report."""

    scenario: str
    objectives: Objectives
    timeline: Timeline
    problems: list[Problem]
    checks: list[chk.Check]
    backup: BackupSetResult | None
    metadata_restores: list[MetadataRestore]
    snapshot_restores: list[SnapshotRestore]
    expected_docs: dict[str, dict[str, int]]
    rpo: RpoResult | None
    rto_seconds: float | None
    exposure_seconds: float | None
    tenants: list[Tenant]
    kdf: crypto.KdfSpec
    versions: dict[str, str]
    harness_error: bool
    uncertain: bool
    recovery_throttle: str | None = None  # indices.recovery.max_bytes_per_sec during the restore
    # Wall time of restoring every tenant's snapshots (they overlap: not the sum of the tenants').
    snapshot_restore_wall_s: float | None = None
    # How the tenants were restored: concurrency, wall time, Elasticsearch's limits, changes.
    restore_settings: dict[str, Any] = field(default_factory=dict)
    expected_failure: bool = False  # a fault scenario: the recovery is meant to fail
    expectation_checked: bool = False  # ... and a step checked where and why it failed
    notes: dict[str, Any] = field(default_factory=dict)  # for the report's evidence
    # Per tenant, what a restore test restored (each index's counts) and how long it took.
    index_results: dict[str, list[IndexResult]] = field(default_factory=dict)
    tenant_restore_seconds: dict[str, float] = field(default_factory=dict)


class DrillRecord(Protocol):
    """A runbook drill as its measurement and verification read it (a :class:`~drdrill.drill.
    session.Drill`)."""

    scenario: str
    settings: DrillSettings
    timeline: Timeline
    problems: list[Problem]
    checks: list[chk.Check]
    backup: BackupSetResult | None
    notes: dict[str, Any]
    expected_docs: dict[str, dict[str, int]]
    expected_rows: dict[str, int]
    owners: TenantIndices
    canary_log: CanaryLog | None
    metadata_restores: list[MetadataRestore]
    snapshot_restores: list[SnapshotRestore]
    disaster_kind: str | None
    versions: dict[str, str]
    lost_tenants: list[Tenant]
    recovery_throttle: str | None
    restore_runs: list[TenantRestores]
    restore_limits: dict[str, str]
    restore_limits_changed: dict[str, str]
    bystanders: dict[str, object]
    expect_failure: bool
    expectation_checked: bool

    @property
    def platform(self) -> Platform: ...
