"""Every wait on PostgreSQL is bounded: a paused server (SIGSTOP: its kernel still acknowledges
the socket, so keepalives notice nothing) makes each call fail with a clear error instead of
hanging the drill. The server is resumed whatever happens."""

from __future__ import annotations

import contextlib
import io
import signal
import threading
from collections.abc import Callable, Iterator

import pytest

from drdrill.adapters.platform import Platform
from drdrill.errors import ServiceError
from drdrill.provision.postgres import find_pg_bindir

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def paused(stack) -> Iterator[None]:
    stack.signal_service("postgres", signal.SIGSTOP)
    try:
        yield
    finally:
        stack.signal_service("postgres", signal.SIGCONT)


def returns(call: Callable[[], object], within_s: float = 120) -> BaseException | None:
    """Run ``call`` in a thread; the exception it ended with. A call still blocked after
    ``within_s`` fails the test (a liveness bound, not a speed measurement)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within_s)
    assert not thread.is_alive(), "the call is still blocked on a paused PostgreSQL"
    return outcome[0]


@pytest.fixture
def platform(endpoints) -> Iterator[Platform]:
    plat = Platform.from_endpoints(endpoints, pg_bindir=find_pg_bindir(), request_timeout_s=3)
    plat.db.ensure_schema()
    yield plat
    plat.close()


def test_a_query_on_an_open_connection_gives_up(platform, session_stack):
    def query() -> None:
        with platform.db.connect(timeout_s=3) as conn:
            conn.execute("SELECT 1")
            with paused(session_stack):
                conn.execute("SELECT 2")

    error = returns(query)
    assert isinstance(error, ServiceError) and "did not answer within 3s" in error.message


def test_connecting_gives_up(platform, session_stack):
    with paused(session_stack):
        error = returns(platform.db.row_counts)
    assert isinstance(error, ServiceError) and "unreachable" in error.message


def test_pg_dump_is_stopped_at_its_deadline(platform, session_stack):
    with paused(session_stack):
        error = returns(lambda: platform.db.dump_all(io.BytesIO(), timeout_s=3))
    assert isinstance(error, ServiceError), error
    assert "pg_dump" in error.message


def test_a_canary_write_gives_up(platform, session_stack):
    from datetime import UTC, datetime

    def write() -> None:
        with platform.db.canary_session(write_timeout_s=2) as write_rows:
            write_rows([("bounded", "waits", 0, datetime.now(UTC))])
            with paused(session_stack):
                write_rows([("bounded", "waits", 1, datetime.now(UTC)), ("bounded", "waits2", 1, datetime.now(UTC))])

    error = returns(write)
    assert isinstance(error, ServiceError) and "not answered within 2s" in error.message
