"""Human durations: ``30m``, ``24h``, ``1h30m``, ``1500ms``, ``2d`` or plain seconds ``45``."""

from __future__ import annotations

import math
import re

from drdrill.errors import ConfigError

# Largest unit first: the order in which components must appear ("1h30m", not "30m1h"), so a
# typo such as "30m1h" is rejected instead of silently meaning 90 minutes.
_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_RANK = {unit: rank for rank, unit in enumerate(_UNITS)}
# "ms" before "m" and "s" so that "1500ms" is not read as 1500 minutes followed by junk.
# ASCII digits only: float() would also read "١٢" as 12, which nobody means in a config file.
_COMPONENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|d|h|m|s)", re.ASCII)
_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_HINT = "a number with a unit ms, s, m, h or d, e.g. 90s, 30m, 24h, 1h30m; a plain number means seconds"


def parse_duration(value: str | int | float, key: str = "duration") -> float:
    """Parse a duration into seconds; ``key`` names the setting in the error message."""
    if isinstance(value, bool):  # bool is an int; True must not mean one second
        raise ConfigError(key, f"expected a duration, got {value!r}", hint=_HINT)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(
                key, f"duration must be a finite, non-negative number, got {value!r}", hint=_HINT
            )
        return float(value)
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ConfigError(key, "duration is empty", hint=_HINT)
    if text.startswith("-"):
        raise ConfigError(key, f"duration must not be negative, got {value!r}", hint=_HINT)
    if _PLAIN.fullmatch(text):
        return _finite(float(text), key, value)

    total = 0.0
    pos = 0
    last_rank = -1
    while pos < len(text):
        match = _COMPONENT.match(text, pos)
        if match is None:
            raise ConfigError(key, f"cannot read duration {value!r} at {text[pos:]!r}", hint=_HINT)
        number, unit = match.groups()
        if _RANK[unit] <= last_rank:
            raise ConfigError(key, f"units out of order or repeated in {value!r}", hint=_HINT)
        last_rank = _RANK[unit]
        total += float(number) * _UNITS[unit]
        pos = match.end()
    return _finite(total, key, value)


def _finite(seconds: float, key: str, value: object) -> float:
    # A 400-digit number parses as infinity: that is no duration, and an infinite RTO target
    # would turn every drill into a pass.
    if not math.isfinite(seconds):
        raise ConfigError(key, f"duration {str(value)[:40]!r}… is too large", hint=_HINT)
    return seconds


def format_duration(seconds: float) -> str:
    """Format seconds for people: ``1.42s``, ``12m 03s``, ``2h 05m``, ``14d 05h``: the one way
    drdrill prints a duration or an age.

    Truncates rather than rounds, so a shown value is never larger than the measured one and
    59.999 s does not turn into the odd ``60.00s``.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 60:
        return f"{math.floor(seconds * 100) / 100:.2f}s"
    whole = math.floor(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 48 * 3600:  # "24h 00m", the runbook's RPO, reads as it is written
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"
