from datetime import UTC, datetime, timedelta

import pytest

from drdrill.core.points import check_policy, nearest, pick
from drdrill.errors import ConfigError

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
NIGHTS = [NOW - timedelta(days=d, hours=1) for d in range(9, -1, -1)]  # 9 days ago .. last night
WEEK = timedelta(days=7)


def test_newest_oldest_within_the_window_and_random_repeatable():
    assert pick(NIGHTS, "newest", seed="x", now=NOW, window=WEEK) == 9
    oldest = pick(NIGHTS, "oldest", seed="x", now=NOW, window=WEEK)
    assert oldest is not None and NOW - NIGHTS[oldest] <= WEEK and NOW - NIGHTS[oldest - 1] > WEEK
    chosen = {pick(NIGHTS, "random", seed=f"drill-{n}", now=NOW, window=WEEK) for n in range(60)}
    assert chosen <= set(range(oldest, 10)) and len(chosen) > 3  # spread over the window, never outside
    assert pick(NIGHTS, "random", seed="d1", now=NOW, window=WEEK) == pick(NIGHTS, "random", seed="d1", now=NOW,
                                                                              window=WEEK)
    assert pick([], "newest", seed="x", now=NOW, window=WEEK) is None
    stale = [NOW - timedelta(days=30)]
    assert pick(stale, "oldest", seed="x", now=NOW, window=WEEK) == 0  # none in the window: the newest there is


def test_nearest_point_and_policy_names():
    assert nearest(NIGHTS, NIGHTS[4] + timedelta(minutes=10)) == 4
    assert nearest([None, NIGHTS[2]], NOW) == 1 and nearest([None], NOW) is None
    assert check_policy("oldest") == "oldest"
    with pytest.raises(ConfigError):
        check_policy("latest")
