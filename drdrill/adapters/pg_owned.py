"""PostgreSQL for a run on someone else's environment: one run at a time (an advisory lock the
server releases when its holder dies), and drdrill's marks on the databases it creates."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from drdrill.adapters.postgres import MetadataDb, PgConn
from drdrill.core.ownership import Write
from drdrill.errors import ServiceError, UsageError

log = logging.getLogger(__name__)

# The advisory lock's two keys ("drdr", "ill"): every run of drdrill on an environment asks for
# the same one, in the platform's database.
LOCK_KEYS = (0x64726472, 0x696C6C)


class EnvironmentBusy(UsageError):
    """Another run of drdrill holds the environment."""


@dataclass
class EnvironmentLock:
    """Held from :meth:`acquire` until :meth:`release` or the holder's death: the server drops a
    session's advisory locks with the session. Its own connection (no statement in flight), named
    after the run so that a second run can say who holds it."""

    conn: PgConn
    holder_name: str
    timeout_s: float = 10
    _connection: psycopg.Connection | None = None

    def acquire(self) -> None:
        params = {**self.conn.kwargs(), "connect_timeout": max(1, int(self.timeout_s)),
                  "application_name": self.holder_name[:63]}
        try:
            connection = psycopg.connect(**params, autocommit=True)
        except psycopg.OperationalError as exc:
            raise ServiceError(f"PostgreSQL {self.conn!r} unreachable while taking the environment's lock: "
                               f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}") from exc
        row = connection.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEYS).fetchone()
        if row and row[0]:
            self._connection = connection
            log.info("holding the environment's lock as %s", self.holder_name)
            return
        holder = _holder(connection)
        connection.close()
        raise EnvironmentBusy(f"another run of drdrill holds this environment: {holder}",
                              hint="wait for it to finish; a run that died releases the lock with its connection")

    def release(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()  # the server releases the lock with the session
            finally:
                self._connection = None

    @property
    def held(self) -> bool:
        return self._connection is not None


def _holder(connection: psycopg.Connection) -> str:
    row = connection.execute(
        "SELECT a.pid, a.application_name, host(a.client_addr), a.backend_start FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 2 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())", LOCK_KEYS).fetchone()
    if row is None:
        return "(it has just let go: try again)"
    pid, name, addr, since = row
    return f"{name or 'an unnamed session'} (server pid {pid}, from {addr or 'a local socket'}, since " \
           f"{since.isoformat(timespec='seconds') if since else '?'})"


def mark_database(db: MetadataDb, text: str) -> None:
    """``COMMENT ON DATABASE``: the mark on a database drdrill created (``db`` is connected to it)."""
    db.guard.check(Write("postgres", "database", db.conn.database, "write", "COMMENT ON DATABASE"))
    with db.connect() as connection:
        connection.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(db.conn.database),
                                                                          sql.Literal(text)))


def database_comments(db: MetadataDb, prefix: str) -> dict[str, str | None]:
    """Databases whose name begins with ``prefix``, and the comment each carries."""
    with db.connect() as connection:
        rows = connection.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE NOT datistemplate AND starts_with(datname, %s)", (prefix,)).fetchall()
    return {str(r[0]): (str(r[1]) if r[1] is not None else None) for r in rows}


# The runbook's table: which indices each tenant owns (the platform's own tenant list).
RUNBOOK_TENANTS_QUERY = "SELECT org_id, namespace, index_name FROM tenant_containers"


def tenant_rows(db: MetadataDb, query: str | None = None) -> list[tuple[str, str, str]]:
    """``(org_id, namespace, index_name)`` rows of the platform's tenant list: the runbook's
    table, or the settings' query where a platform's schema differs. Read only; a query that
    does not yield three columns is a usage error."""
    text = query or RUNBOOK_TENANTS_QUERY
    try:
        with db.connect() as connection:
            cursor = connection.execute(text)  # the operator's own query, in a read-only session
            if cursor.description is None or len(cursor.description) != 3:
                raise UsageError(f"[target] tenants_query must yield 3 columns (org, namespace, index), got "
                                 f"{len(cursor.description or [])}", hint=f"e.g. {RUNBOOK_TENANTS_QUERY}")
            rows = cursor.fetchall()
    except psycopg.errors.UndefinedTable:
        if query is not None:
            raise
        return []
    except psycopg.Error as exc:
        if query is None:
            raise
        raise UsageError(f"[target] tenants_query failed: {' '.join(str(exc).split())[:200]}",
                         hint=f"e.g. {RUNBOOK_TENANTS_QUERY}") from exc
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]
