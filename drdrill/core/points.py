"""Which recovery point a restore test restores (pure).

A recovery point is one night's backup set: the whole-database dump and, for each tenant, the
complete snapshot nearest to it in time. ``newest`` restores last night's (what a disaster
tonight would use); ``oldest`` the oldest still within the retention window (that the 7 days
kept are usable, not only present); ``random`` one night of the window, chosen by a seed the
report records (the drill id), so that a run can be repeated exactly."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from drdrill.errors import ConfigError

Policy = Literal["newest", "oldest", "random"]
POLICIES: tuple[Policy, ...] = ("newest", "oldest", "random")


def check_policy(value: object, key: str = "restore_test.point") -> Policy:
    if value not in POLICIES:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(POLICIES)}",
                          hint="newest (last night), oldest (the oldest kept), random (seeded by the drill id)")
    return value


def pick(times: Sequence[datetime], policy: Policy, *, seed: str, now: datetime, window: timedelta) -> int | None:
    """The index (into ``times``, oldest first) of the point to restore; None when there is none.
    Points older than ``window`` are not candidates unless there is no other."""
    if not times:
        return None
    candidates = [n for n, at in enumerate(times) if now - at <= window] or [len(times) - 1]
    if policy == "newest":
        return candidates[-1]
    if policy == "oldest":
        return candidates[0]
    return random.Random(seed).choice(candidates)  # a repeatable choice, not a secret


def nearest(times: Sequence[datetime | None], at: datetime) -> int | None:
    """The index of the time nearest to ``at`` (ties: the later one); None for no known time."""
    known = [(abs((t - at).total_seconds()), -n, n) for n, t in enumerate(times) if t is not None]
    return min(known)[2] if known else None
