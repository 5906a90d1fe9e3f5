"""The runbook's step 5 for a drill: read what the recovered services hold and compare it with
what the drill knows was there (the pure comparisons are in :mod:`drdrill.drill.checks`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from drdrill.adapters.platform import Platform
from drdrill.core import layout
from drdrill.core.layout import Tenant, TenantIndices
from drdrill.drill import checks as chk
from drdrill.drill.canary import STORES, canary_state

if TYPE_CHECKING:
    from drdrill.drill.outcome import DrillRecord


def tenant_fingerprints(platform: Platform, owners: TenantIndices, tenants: list[Tenant]) -> dict[str, object]:
    """What "untouched" means: the same index UUIDs, document counts and rows."""
    rows = platform.db.row_counts()
    prints: dict[str, object] = {}
    for tenant in tenants:
        names = sorted(platform.cluster.indices_named(owners.indices_of(tenant)))
        if names:  # counts of what was written, not of what the last periodic refresh showed
            platform.cluster.refresh(",".join(names))
        prints[tenant.key] = {
            "uuids": sorted(platform.cluster.index_uuids(names).items()),
            "docs": sorted((i, s.docs) for i, s in platform.cluster.indices_named(names).items()),
            "rows": rows.get((tenant.org_id, tenant.namespace), 0),
        }
    return prints


def gather_checks(drill: DrillRecord, metadata_only: bool) -> list[chk.Check]:
    platform = drill.platform
    tenants = drill.settings.tenants
    out: list[chk.Check] = []
    observed_rows = {f"{org}/{ns}": n for (org, ns), n in platform.db.row_counts().items()}
    for tenant in tenants:
        out.append(chk.check_rows(tenant.key, drill.expected_rows.get(tenant.key, 0),
                                  observed_rows.get(tenant.key, 0)))
    # The drilled tenants' indices, by the platform's map before the disaster, and whatever
    # their snapshots brought back.
    names = {i for t in tenants for i in drill.owners.indices_of(t)}
    names |= {i for r in drill.snapshot_restores for i in r.indices}
    indices = {name: chk.IndexObservation(state.health, state.docs)
               for name, state in platform.cluster.indices_named(sorted(names)).items()}
    if not metadata_only:
        for tenant in tenants:
            out.extend(chk.check_indices(tenant.key, drill.expected_docs.get(tenant.key, {}), indices))
    out.extend(chk.check_cross_store(platform.db.containers_index_names(), set(indices),
                                     {t.key for t in tenants}))
    out.extend(_canary_checks(drill, metadata_only))
    for key in sorted(drill.bystanders):
        out.append(_untouched_check(drill, Tenant.parse(key)))
    return out


def _untouched_check(drill: DrillRecord, tenant: Tenant) -> chk.Check:
    before = drill.bystanders[tenant.key]
    after = tenant_fingerprints(drill.platform, drill.owners, [tenant])[tenant.key]
    same = before == after
    return chk.Check(f"tenant {tenant} untouched", same,
                     "same indices, documents and rows" if same else f"changed: {after}", tenant.key)


def canary_window(drill: DrillRecord, store: str, tenant: Tenant) -> tuple[datetime, datetime] | None:
    """When the backup that a tenant's store is restored from read it: a canary acknowledged
    before the window must be back, one begun after it cannot be."""
    if drill.backup is None:
        return None
    if store == "elasticsearch":
        snap = next((s for s in drill.backup.snapshots if s.tenant == tenant.key), None)
        return (snap.call_began, snap.call_ended) if snap and snap.call_began and snap.call_ended else None
    scope = tenant.org_id if drill.disaster_kind == "tenant loss" else layout.ALL_SCOPE
    dump = next((m for m in drill.backup.metadata if m.scope == scope), None)
    return (dump.dump_began, dump.dump_ended) if dump else None


def _canary_checks(drill: DrillRecord, metadata_only: bool) -> list[chk.Check]:
    out: list[chk.Check] = []
    canaries = drill.canary_log
    if canaries is None:
        return out
    # Bystanders of a one-tenant disaster lost nothing: only the lost tenants' canaries must
    # match the backup window.
    for tenant in drill.lost_tenants or drill.settings.tenants:
        for store in STORES:
            window = canary_window(drill, store, tenant)
            if window is None or (metadata_only and store == "elasticsearch"):
                continue
            restored, max_seq, _newest = canary_state(drill.platform, tenant, store)
            low = canaries.acked_before(tenant.key, store, window[0])
            high = canaries.written_by(tenant.key, store, window[1])
            out.append(chk.check_canary(tenant.key, store, restored, max_seq, low, high))
    return out
