"""Fixtures for integration tests that need more than the shared session stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from drdrill.adapters.docker_engine import DockerEngine
from drdrill.adapters.platform import Endpoints, Platform
from drdrill.provision.postgres import find_pg_bindir
from drdrill.settings import stack_settings_from_env
from drdrill.targets.local.stack import LocalStack

from .staging import Staging, staging_environment


@pytest.fixture(scope="module")
def fresh_stack(paths) -> Iterator[LocalStack]:
    """A second, empty local stack (its own Elasticsearch, MinIO and PostgreSQL): a
    "replacement site" that has never seen the session stack's data. One per test module."""
    stack = LocalStack(paths, stack_settings_from_env(),
                       stack_name=f"pytest-fresh-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    try:
        stack.up()
        yield stack
    finally:
        stack.down(purge=True)


@pytest.fixture(scope="module")
def fresh_endpoints(fresh_stack: LocalStack) -> Endpoints:
    return fresh_stack.endpoints()


@pytest.fixture(scope="module")
def platform(endpoints: Endpoints) -> Iterator[Platform]:
    """Clients of the session stack's services (a module may define its own, e.g. with short
    timeouts)."""
    plat = Platform.from_endpoints(endpoints, pg_bindir=find_pg_bindir())
    plat.db.ensure_schema()
    try:
        yield plat
    finally:
        plat.close()


@pytest.fixture(scope="module")
def staging(paths, tmp_path_factory) -> Iterator[Staging]:
    """An environment drdrill did not write (tests/integration/staging.py), one per test module
    that asks for it."""
    yield from staging_environment(paths, tmp_path_factory)


@pytest.fixture
def unchanged(staging: Staging) -> Iterator[None]:
    """The case must leave staging exactly as it found it."""
    before = staging.fingerprint()
    yield
    assert staging.fingerprint() == before


@pytest.fixture(scope="module")
def engine(paths) -> Iterator[DockerEngine]:
    """A Docker engine for a containers module: this machine's, else one started for the module."""
    engine = DockerEngine(paths.state_dir, paths.cache_dir)
    engine.ensure()  # exported as DOCKER_HOST: the drdrill subprocesses of a test find the same engine
    try:
        yield engine
    finally:
        engine.stop()  # only if this module started it
