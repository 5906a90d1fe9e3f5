"""Binds the feature files chosen by `drdrill run` to pytest-bdd. The step library itself is
loaded as pytest plugins (drdrill.steps.* and a project's own steps/), so this module only
says which scenarios to run; plain pytest does not collect it."""

from __future__ import annotations

import os

from pytest_bdd import scenarios

_features = [p for p in os.environ.get("DRDRILL_FEATURES", "").split(os.pathsep) if p]
if _features:
    scenarios(*_features)
