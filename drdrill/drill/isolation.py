"""Tenant path isolation, proven against the real object store: each tenant's own credentials
list, write and read its own path, and are refused every other tenant's path and metadata/
(the runbook's "paths isolated by tenant organisation ID and namespace")."""

from __future__ import annotations

from drdrill.adapters.s3 import ObjectStore
from drdrill.core.layout import METADATA_PREFIX, Tenant
from drdrill.drill.checks import Check

PROBE = "drdrill-isolation-probe"
CHECK_PREFIX = "isolation:"


def isolation_checks(root: ObjectStore, stores: dict[Tenant, ObjectStore]) -> list[Check]:
    """``root``: the store with the platform's credentials (to read names and clean probes);
    ``stores``: each tenant's own view of it."""
    checks: list[Check] = []
    dumps = [o.key for o in root.list(METADATA_PREFIX)][:1]
    for tenant, own in sorted(stores.items()):
        probe = tenant.repo_prefix + PROBE
        wrote = own.allowed("put", probe)
        checks.append(_check(tenant, "writes and reads its own path", wrote and own.allowed("get", probe)
                             and own.allowed("list", tenant.repo_prefix), expect=True))
        for other in sorted(t for t in stores if t != tenant):
            theirs = next((o.key for o in root.list(other.repo_prefix) if not o.key.endswith(PROBE)),
                          other.repo_prefix + "index.latest")
            trespass = other.repo_prefix + PROBE + f".{tenant.org_id}.{tenant.namespace}"
            reached = [what for what, allowed in (
                ("list", own.allowed("list", other.repo_prefix)), ("read", own.allowed("get", theirs)),
                ("write", own.allowed("put", trespass))) if allowed]
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
