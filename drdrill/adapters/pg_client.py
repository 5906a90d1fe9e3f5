"""Where and as whom drdrill connects to PostgreSQL (:class:`PgConn`, :class:`Deadline`) and
PostgreSQL's command-line clients (pg_dump, psql) as child processes, part of the postgres
adapter: streamed both ways, bounded by a deadline, never outliving the call.

Dumps stream out of ``pg_dump`` into any writer; a restore streams into ``psql``'s standard
input, so a decrypted dump never lies on disk."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import psycopg

from drdrill.errors import RestoreFailed, ServiceError, ToolMissing

_STDERR_KEPT = 64 * 1024
_CHUNK = 1 << 20


class Writer(Protocol):
    def write(self, data: bytes, /) -> int: ...


def find_client(tool: str, bindir: Path | None) -> str:
    """pg_dump/psql from the server's own bin dir when known (versions must match)."""
    if bindir is not None and (bindir / tool).exists():
        return str(bindir / tool)
    found = shutil.which(tool)
    if found is None:
        raise ToolMissing(tool, "install Debian's postgresql-client package")
    return found


class _Child:
    """A client process whose stderr is drained in memory (read after the main stream, a full
    pipe could deadlock it; on disk it could hold fragments of the data) and that is killed at
    its deadline."""

    def __init__(self, argv: list[str], env: dict[str, str], timeout_s: float, *,
                 stdin: int | None, stdout: int | None) -> None:
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env)
        self.timed_out = threading.Event()
        self._errors = bytearray()
        self._drain = threading.Thread(target=self._read_errors, name=f"{Path(argv[0]).name}-stderr", daemon=True)
        self._drain.start()
        self._killer = threading.Timer(timeout_s, self._stop)
        self._killer.daemon = True
        self._killer.start()

    def _stop(self) -> None:
        self.timed_out.set()
        self.proc.kill()

    def _read_errors(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        while chunk := stream.read(8192):
            self._errors += chunk
            del self._errors[:-_STDERR_KEPT]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()

    def finish(self, grace_s: float = 10) -> int:
        """Wait for the exit (killing it after ``grace_s``) and stop the helpers."""
        try:
            code = self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        finally:
            self._killer.cancel()
        self._drain.join(5)
        return code

    def error_line(self) -> str:
        """The line that says what went wrong: the last ERROR/FATAL, else the last line."""
        lines = self._errors.decode(errors="replace").strip().splitlines()
        flagged = [line for line in lines if "ERROR:" in line or "FATAL:" in line]
        return (flagged or lines or ["no message"])[-1].strip()


def stream_out(argv: list[str], env: dict[str, str], out: BinaryIO, *, tool: str, timeout_s: float) -> None:
    """Stream a tool's standard output into ``out``, killing it at the deadline."""
    child = _Child(argv, env, timeout_s, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    try:
        stdout = child.proc.stdout
        assert stdout is not None
        while chunk := stdout.read(_CHUNK):
            out.write(chunk)
    except BaseException:
        child.kill()
        child.finish()
        raise
    code = child.finish()  # stdout closed: it is exiting
    if child.timed_out.is_set():
        raise ServiceError(f"{tool} did not finish within {timeout_s:g}s and was stopped",
                           hint="is PostgreSQL paused or overloaded? (pg_isready)")
    if code != 0:
        raise ServiceError(f"{tool} failed (exit {code}): {child.error_line()}")


class _PsqlInput:
    """psql's standard input. When psql has stopped reading (it met an error and exited), the
    rest is discarded rather than raised: the feeder still reads its source to the end, so a
    cause it finds there (a dump that does not decrypt) is reported instead of psql's
    complaint about the garbage it was given."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self.closed_early = False

    def write(self, data: bytes, /) -> int:
        if not self.closed_early:
            try:
                self._pipe.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.closed_early = True
        return len(data)


def stream_into_psql(argv: list[str], env: dict[str, str], feed: Callable[[Writer], object], *, label: str,
                     timeout_s: float) -> None:
    """Run ``argv`` (psql reading ``-f -``) with ``feed`` writing its standard input.

    End of input is what lets psql commit: if ``feed`` raises, psql is killed before it ever
    sees it, so with ``--single-transaction`` nothing it read is committed, and the error is
    re-raised."""
    child = _Child(argv, env, timeout_s, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert child.proc.stdin is not None
    sink = _PsqlInput(child.proc.stdin)
    try:
        feed(sink)
    except BaseException:
        child.kill()
        child.finish()
        raise
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        child.proc.stdin.close()
    code = child.finish(grace_s=max(1.0, timeout_s))
    if child.timed_out.is_set():
        raise RestoreFailed(f"psql restore of {label} did not finish within {timeout_s:.0f}s and was stopped",
                            hint="is PostgreSQL hung or the dump unexpectedly large?")
    if code != 0:
        raise RestoreFailed(f"psql restore of {label} failed (exit {code}): {child.error_line()}",
                            hint="check the database is reachable and the user may write to it")


CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class PgConn:
    """Where and as whom to connect. ``params`` carries further libpq keywords of a user's
    DSN (``sslmode``, ``sslrootcert``…), never the password."""

    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dsn(cls, dsn: str) -> PgConn:
        """A libpq DSN (URI or keywords) with its password."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            parts = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
        except psycopg.ProgrammingError as exc:
            lines = str(exc).strip().splitlines() or [type(exc).__name__]
            raise ValueError(f"not a PostgreSQL DSN: {lines[-1]}") from None
        known = {k: parts.pop(k, None) for k in ("host", "port", "dbname", "user", "password")}
        return cls(known["host"] or "localhost", int(known["port"] or 5432), known["dbname"] or "postgres",
                   known["user"] or "postgres", known["password"] or "", tuple(sorted(parts.items())))

    def with_database(self, database: str) -> PgConn:
        return PgConn(self.host, self.port, database, self.user, self.password, self.params)

    def kwargs(self, database: str | None = None) -> dict[str, Any]:
        # Keepalives notice a dead peer or a cut network (not a paused server: the deadline does).
        return {"host": self.host, "port": self.port, "dbname": database or self.database, "user": self.user,
                "password": self.password, "connect_timeout": CONNECT_TIMEOUT_S, "keepalives": 1,
                "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3, **dict(self.params)}

    def child_env(self) -> dict[str, str]:
        """Just what pg_dump/psql need: not drdrill's whole environment (other secrets)."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
                "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S)}

    def cli_args(self, database: str | None = None) -> list[str]:
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo(dbname=database or self.database, **dict(self.params))
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", conninfo]

    def __repr__(self) -> str:
        return f"PgConn({self.user}@{self.host}:{self.port}/{self.database})"


class Deadline:
    """Shut a connection's socket down when ``seconds`` pass, so whatever call is blocked on it
    returns with an error instead of waiting for a server that will not answer."""

    def __init__(self, conn: psycopg.Connection, seconds: float) -> None:
        self.conn, self.seconds = conn, seconds
        self.fired = threading.Event()
        self._timer = threading.Timer(seconds, self._strike)
        self._timer.daemon = True

    def _strike(self) -> None:
        self.fired.set()
        with contextlib.suppress(OSError, psycopg.Error):
            sock = socket.socket(fileno=os.dup(self.conn.pgconn.socket))
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
