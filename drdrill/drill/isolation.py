"""Tenant path isolation, proven against the real object store: each tenant's own credentials
list, write and read its own path, and are refused every other tenant's path and metadata/
(the runbook's "paths isolated by tenant organisation ID and namespace")."""

from __future__ import annotations

from drdrill.adapters.s3 import ObjectStore
from drdrill.core.layout import METADATA_PREFIX, Tenant
from drdrill.drill.checks import Check

PROBE = "drdrill-isolation-probe"
CHECK_PREFIX = "isolation:"


# Up to this many tenants every tenant is tried on every other's path; beyond, on its
# neighbours (what a policy written too wide reaches first): n² attempts do not scale to 1,000.
ALL_PAIRS_UP_TO = 12
NEIGHBOURS = 4


def neighbours(tenant: Tenant, tenants: list[Tenant]) -> list[Tenant]:
    """The tenants whose paths ``tenant``'s credentials are tried on: all of them while they
    are few; else the nearest in path order on either side (the same organisation's other
    namespaces, then the adjacent organisations') and the first of another organisation."""
    ordered = sorted(tenants)
    others = [t for t in ordered if t != tenant]
    if len(ordered) <= ALL_PAIRS_UP_TO:
        return others
    at = ordered.index(tenant)
    near = [ordered[(at + step) % len(ordered)] for step in (1, -1, 2, -2)][:NEIGHBOURS]
    foreign = next((t for t in others if t.org_id != tenant.org_id), None)
    return sorted(set(near + ([foreign] if foreign else [])) - {tenant})


def isolation_checks(root: ObjectStore, stores: dict[Tenant, ObjectStore], *, read_only: bool = False) -> list[Check]:
    """``root``: the store with the platform's credentials (to read names and clean probes);
    ``stores``: each tenant's own view of it. ``read_only`` (a live environment): list and read
    only, never a write, on its own path as on the others'."""
    checks: list[Check] = []
    dumps = [o.key for o in root.list(METADATA_PREFIX)][:1]
    blobs: dict[Tenant, str] = {}

    def a_blob_of(other: Tenant) -> str:
        if other not in blobs:
            blobs[other] = next((o.key for o in root.list(other.repo_prefix) if not o.key.endswith(PROBE)),
                                other.repo_prefix + "index.latest")
        return blobs[other]

    for tenant, own in sorted(stores.items()):
        probe = tenant.repo_prefix + PROBE
        if read_only:
            wrote = False
            checks.append(_check(tenant, "lists and reads its own path", own.allowed("list", tenant.repo_prefix)
                                 and own.allowed("get", a_blob_of(tenant)), expect=True))
        else:
            wrote = own.allowed("put", probe)
            checks.append(_check(tenant, "writes and reads its own path", wrote and own.allowed("get", probe)
                                 and own.allowed("list", tenant.repo_prefix), expect=True))
        for other in neighbours(tenant, list(stores)):
            theirs = a_blob_of(other)
            trespass = other.repo_prefix + PROBE + f".{tenant.org_id}.{tenant.namespace}"
            attempts = [("list", "list", other.repo_prefix), ("read", "get", theirs)]
            if not read_only:
                attempts.append(("write", "put", trespass))
            reached = [what for what, operation, key in attempts if own.allowed(operation, key)]
            if "write" in reached:
                root.delete([trespass])
            checks.append(_check(tenant, f"is refused tenant {other}'s path", not reached, expect=True,
                                 detail=f"reached it: {', '.join(reached)}" if reached else "AccessDenied"))
        refused_metadata = not own.allowed("list", METADATA_PREFIX) and all(not own.allowed("get", k) for k in dumps)
        checks.append(_check(tenant, "is refused metadata/", refused_metadata, expect=True))
        if wrote:
            root.delete([probe])
    return checks


def _check(tenant: Tenant, what: str, ok: bool, *, expect: bool, detail: str | None = None) -> Check:
    passed = ok == expect
    return Check(f"{CHECK_PREFIX} tenant {tenant} {what}", passed, detail or ("yes" if ok else "no"), tenant.key,
                 {"isolation": True})
