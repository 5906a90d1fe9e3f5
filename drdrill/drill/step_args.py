"""What a step definition declares about itself, read when a run is planned (before anything
starts): whether it needs a target it may destroy, which target it needs, and how its arguments
are checked. The step library (``steps/``) and a team's own steps use the same decorators;
``drdrill validate`` and ``drdrill run`` call :func:`check_step` for every step of every feature,
so a malformed argument costs a one-line error naming the file and line, not a half-run drill.

Each checker is also what the step itself calls at run time: one parse, one rule."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from drdrill.core.durations import parse_duration
from drdrill.core.forecast import byte_rate
from drdrill.core.layout import Tenant
from drdrill.errors import ConfigError, UsageError

DESTRUCTIVE_ATTR = "__drdrill_destructive__"
NEEDS_ATTR = "__drdrill_needs_target__"
CHECKS_ATTR = "__drdrill_argument_checks__"
TABLE_ATTR = "__drdrill_table_check__"
# A step that asks for this fixture drives a runbook drill (seed, destroy, recover): destructive.
DRILL_FIXTURE = "drill"

Checker = Callable[[Any], Any]


def destructive(func: Callable[..., Any]) -> Callable[..., Any]:
    """Declare a step that needs a target it may destroy (put it under ``@given``/``@when``/
    ``@then``). Steps that take the ``drill`` fixture are destructive without it."""
    setattr(func, DESTRUCTIVE_ATTR, True)
    return func


def needs_target(target: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a step only one target can carry out ("containers": a Docker engine's faults;
    "kubernetes": a cluster's)."""
    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, NEEDS_ATTR, target)
        return func
    return mark


def checks_arguments(**checkers: Checker) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare how a step's arguments (by name) are checked at plan time: each checker raises a
    :class:`UsageError` (or :class:`ValueError`) for a value the step cannot take."""
    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, CHECKS_ATTR, {**getattr(func, CHECKS_ATTR, {}), **checkers})
        return func
    return mark


def checks_table(checker: Callable[[Sequence[Sequence[object]]], Any]) -> Callable[[Callable[..., Any]], Any]:
    """Declare how a step's data table is checked at plan time."""
    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        setattr(func, TABLE_ATTR, checker)
        return func
    return mark


def is_destructive(func: Callable[..., Any]) -> bool:
    if getattr(func, DESTRUCTIVE_ATTR, False):
        return True
    try:
        return DRILL_FIXTURE in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True  # a step that cannot be inspected is not trusted to be harmless


def needed_target(func: Callable[..., Any]) -> str | None:
    return getattr(func, NEEDS_ATTR, None)


def check_step(func: Callable[..., Any], arguments: dict[str, Any], table: Sequence[Sequence[object]] | None,
               where: str) -> None:
    """Run a step's declared checks on the arguments and table it will get; a failure is a usage
    error naming ``where`` (file:line and the step)."""
    checks: dict[str, Checker] = getattr(func, CHECKS_ATTR, {})
    table_check = getattr(func, TABLE_ATTR, None)
    try:
        for name, checker in checks.items():
            if name in arguments:
                checker(arguments[name])
        if table_check is not None:
            table_check(table or [])
    except UsageError as exc:
        raise UsageError(f"{where}: {exc.message}", hint=exc.hint or "see `drdrill steps`") from None
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}", hint="see `drdrill steps`") from None


# --- the checkers the step library uses ---------------------------------------------------------


def duration(what: str) -> Checker:
    def check(value: Any) -> float:
        seconds = parse_duration(str(value), what)
        if seconds <= 0:
            raise ConfigError(what, f"must be more than zero, got {value!r}")
        return seconds
    return check


def at_least(minimum: int, what: str) -> Checker:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(what, f"{value!r} is not a whole number of at least {minimum}")
        return value
    return check


def tenant(value: Any) -> Tenant:
    return Tenant.parse(str(value))


def byte_rate_value(value: Any) -> str:
    if byte_rate(str(value)) is None:
        raise ConfigError("recovery throttle", f"{value!r} is not a byte rate", hint='e.g. "200mb" or "1gb"')
    return str(value)


def es_version(value: Any) -> str:
    from drdrill.settings import StackSettings

    StackSettings(es_version=str(value))  # a usage error for a version drdrill cannot run
    return str(value)


def tenants_table(table: Sequence[Sequence[object]]) -> tuple[list[Tenant], int, int]:
    """``| org_id | namespace | indices | documents |``: the tenants, and the one size every row
    has (indices per tenant, documents per index)."""
    header, *rows = [[str(cell).strip() for cell in row] for row in table] or [[]]
    if not rows or header[:2] != ["org_id", "namespace"]:
        raise ConfigError("tenants table", "expected columns | org_id | namespace | indices | documents |")
    sizes = {(row[2], row[3]) for row in rows if len(row) >= 4}
    if len(sizes) != 1 or len(rows) != sum(1 for row in rows if len(row) >= 4) or \
            not all(value.isdigit() for value in next(iter(sizes))):
        raise ConfigError("tenants table", "every row needs the same whole numbers of indices and documents",
                          hint="one size per table: split tenants of other sizes into another scenario")
    tenants = [Tenant(row[0], row[1]) for row in rows]
    indices, docs = next(iter(sizes))
    return tenants, int(indices), int(docs)
