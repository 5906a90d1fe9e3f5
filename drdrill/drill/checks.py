"""Verification checks (the runbook's step 5, made strict) as pure comparisons of what was
expected with what was observed. Gathering the observations is the session's job."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    tenant: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class IndexObservation:
    health: str
    docs: int


def check_indices(tenant: str, expected: dict[str, int], observed: dict[str, IndexObservation]) -> list[Check]:
    """Every expected index exists, is green, and holds exactly the documents the snapshot held."""
    checks = []
    for index, docs in sorted(expected.items()):
        seen = observed.get(index)
        if seen is None:
            checks.append(Check(f"index {index} exists", False, "missing after restore", tenant))
            continue
        checks.append(Check(f"index {index} is green", seen.health == "green", f"health {seen.health}", tenant))
        checks.append(Check(f"index {index} document count", seen.docs == docs,
                            f"expected {docs}, restored {seen.docs}", tenant,
                            {"docs_expected": docs, "docs_restored": seen.docs}))
    return checks


def check_rows(tenant: str, expected: int, observed: int) -> Check:
    return Check(f"tenant_containers rows of {tenant}", expected == observed,
                 f"expected {expected}, restored {observed}", tenant, {"rows_expected": expected,
                                                                      "rows_restored": observed})


def check_cross_store(rows: list[tuple[str, str, str]], indices: set[str], tenants: set[str]) -> list[Check]:
    """Every tenant row has its index, and every restored index of a drilled tenant has a row."""
    row_indices = {index for _org, _ns, index in rows}
    missing = sorted(index for org, ns, index in rows if f"{org}/{ns}" in tenants and index not in indices)
    orphans = sorted(indices - row_indices)
    return [
        Check("every tenant row has its index", not missing,
              f"rows without an index: {', '.join(missing[:5])}" if missing else f"{len(row_indices)} rows matched",
              evidence={"missing": missing}),
        Check("every restored index belongs to a tenant row", not orphans,
              f"indices without a row: {', '.join(orphans[:5])}" if orphans else f"{len(indices)} indices matched",
              evidence={"orphans": orphans}),
    ]


def check_canary(tenant: str, store: str, restored: int, max_seq: int | None, at_least: int,
                 at_most: int) -> Check:
    """The restored canaries are a contiguous prefix of what was written (0..n-1) and ``n`` lies
    between what was acknowledged before the backup began and what was begun before it ended."""
    contiguous = (restored == 0 and max_seq is None) or (max_seq is not None and restored == max_seq + 1)
    within = at_least <= restored <= at_most
    detail = f"restored {restored} canaries (expected {at_least}..{at_most})"
    if not contiguous:
        detail += f"; sequence has gaps (max seq {max_seq})"
    return Check(f"canaries in {store} of {tenant}", contiguous and within, detail, tenant,
                 {"restored": restored, "max_seq": max_seq, "expected_min": at_least, "expected_max": at_most})


def require(checks: list[Check], words: tuple[str, ...]) -> None:
    """The checks whose names say one of ``words`` ran, and passed: a step that asserts what a
    verification established (none ran: that is not a pass either)."""
    from drdrill.errors import VerificationFailed

    chosen = [c for c in checks if any(w in c.name for w in words)]
    if not chosen:
        raise VerificationFailed(f"no verification covered {' / '.join(words)}")
    failed = [c for c in chosen if not c.passed]
    if failed:
        raise VerificationFailed("; ".join(f"{c.name}: {c.detail}" for c in failed[:3]))
