"""Binds the feature files chosen by `drdrill run` to the step library. Run through
`drdrill run`, which provides the drill fixtures; plain pytest does not collect it."""

from __future__ import annotations

import os

from pytest_bdd import scenarios

from steps.drill_steps import *  # noqa: F403 - step definitions must be visible in this module
from steps.fault_steps import *  # noqa: F403
from steps.restore_test_steps import *  # noqa: F403

_features = [p for p in os.environ.get("DRDRILL_FEATURES", "").split(os.pathsep) if p]
if _features:
    scenarios(*_features)
