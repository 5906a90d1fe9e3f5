"""Shared fixtures. Integration tests share ONE local stack per test session (starting
Elasticsearch costs ~10 s); each test works in its own indices, keys and tables so the
tests stay independent of each other and of order."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

from drdrill.adapters.platform import Endpoints
from drdrill.settings import load_paths, stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

log = logging.getLogger(__name__)

# The repository's drdrill.toml drills a 3-node cluster (`make drill`); the suite's drills start
# one node each unless a test asks for more (tests/integration/test_es_cluster.py), so that the
# default run keeps its time on a 2-core machine. Subprocess drills inherit this.
os.environ.setdefault("DRDRILL_ES_NODES", "1")


@pytest.fixture(scope="session")
def paths():
    return load_paths()


@pytest.fixture(scope="session")
def session_stack(paths) -> Iterator[LocalStack]:
    stack = LocalStack(paths, stack_settings_from_env(), stack_name=f"pytest-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    stack.up()
    try:
        yield stack
    finally:
        stack.down(purge=True)


@pytest.fixture(scope="session")
def endpoints(session_stack: LocalStack) -> Endpoints:
    return session_stack.endpoints()


@pytest.fixture
def unique() -> str:
    """A short unique token for names a test creates (indices, keys, tables)."""
    return uuid.uuid4().hex[:8]
