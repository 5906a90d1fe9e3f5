"""PostgreSQL metadata database: schema, rows, canaries, dumps (pg_dump) and restores (psql).

Every SQL statement drdrill sends lives here. Every wait is bounded: a connection has a
deadline after which its socket is shut down (a paused server never answers, and the kernel
keeps acknowledging its socket, so neither keepalives nor ``statement_timeout`` notice);
pg_dump and psql are killed at theirs. Passwords reach pg_dump/psql through a minimal child
environment (``PGPASSWORD``), never argv, and role passwords are sent as SCRAM verifiers.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import psycopg
from psycopg import sql

from drdrill.adapters.pg_client import Deadline, PgConn, Writer, find_client, stream_into_psql, stream_out
from drdrill.core.ownership import UNRESTRICTED, RefusedWrite, Verb, Write, WritePolicy
from drdrill.errors import ServiceError

log = logging.getLogger(__name__)

TENANT_TABLE = "tenant_containers"
CANARY_TABLE = "drdrill_canary"
# One canary row: org_id, namespace, seq, written_at.
CanaryRow = tuple[str, str, int, datetime]
# Tables whose rows belong to an organisation (they have an org_id column): the unit of a
# per-organisation export.
ORG_TABLES = (TENANT_TABLE, CANARY_TABLE)

SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {TENANT_TABLE} (
    id             bigserial PRIMARY KEY,
    org_id         text        NOT NULL,
    namespace      text        NOT NULL,
    container_name text        NOT NULL,
    index_name     text        NOT NULL,
    doc_count      bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, namespace, index_name)
);
CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (
    org_id     text        NOT NULL,
    namespace  text        NOT NULL,
    seq        bigint      NOT NULL,
    written_at timestamptz NOT NULL,
    PRIMARY KEY (org_id, namespace, seq)
);
"""


def _scram_verifier(conn: psycopg.Connection, user: str, password: str) -> str:
    """What PostgreSQL stores for a password, computed client-side: the server (and its log,
    should the statement fail) never sees the password itself."""
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()


class MetadataDb:
    """The platform's ``es_metadata`` database. The constructor does no I/O.

    ``timeout_s`` bounds every connection's use; long work (dumps, restores) gets its own."""

    def __init__(self, conn: PgConn, *, bindir: Path | None = None, timeout_s: float = 60,
                 guard: WritePolicy = UNRESTRICTED) -> None:
        self.conn = conn
        self.bindir = bindir
        self.timeout_s = timeout_s
        # Asked before every write; a database it does not let drdrill write to is only ever
        # reached through read-only sessions, so the server refuses what a check might miss.
        self.guard = guard

    def with_database(self, database: str) -> MetadataDb:
        return MetadataDb(self.conn.with_database(database), bindir=self.bindir, timeout_s=self.timeout_s,
                          guard=self.guard)

    def _writes(self, verb: Verb = "write", database: str | None = None, what: str = "") -> None:
        self.guard.check(Write("postgres", "database", database or self.conn.database, verb, what))

    @contextlib.contextmanager
    def connect(self, *, autocommit: bool = True, timeout_s: float | None = None, as_conn: PgConn | None = None,
                database: str | None = None, writable: bool = False) -> Iterator[psycopg.Connection]:
        """A connection, read only unless the guard lets drdrill write to its database (or the
        caller has just asked the guard about the statement it sends: ``writable``)."""
        who = as_conn or self.conn
        limit = timeout_s or self.timeout_s
        params = who.kwargs(database)
        # The server gives up on a statement by itself too (locks, a runaway query).
        options = f"{params.get('options', '')} -c statement_timeout={int(limit * 1000)}"
        if not (writable or self.guard.may_write_database(database or who.database)):
            options += " -c default_transaction_read_only=on"
        params["options"] = options.strip()
        try:
            connection = psycopg.connect(**params, autocommit=autocommit)
        except psycopg.OperationalError as exc:
            raise ServiceError(f"PostgreSQL {who!r} unreachable: {_last_line(exc)}",
                               hint="does pg_isready answer? are host, port and credentials right?") from exc
        deadline = Deadline(connection, limit)
        try:
            with connection, deadline:
                yield connection
        except psycopg.Error as exc:
            if deadline.fired.is_set():
                raise ServiceError(f"PostgreSQL {who!r} did not answer within {limit:g}s",
                                   hint="is the server paused or overloaded? (pg_isready)") from exc
            if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):  # the server refused what no check saw
                raise RefusedWrite(Write("postgres", "database", database or who.database, "write",
                                         _last_line(exc)), getattr(self.guard, "environment", "?"),
                                   "PostgreSQL refused it: drdrill's session there is read only") from exc
            raise

    def _admin(self, admin: PgConn, statement: sql.Composed, write: Write, *, database: str = "postgres") -> None:
        self.guard.check(write)
        with self.connect(as_conn=admin, database=database, writable=True) as conn:
            conn.execute(statement)

    # --- schema and rows -----------------------------------------------------------------

    def ensure_schema(self) -> None:
        self._writes()
        with self.connect() as conn:
            conn.execute(SCHEMA_SQL)

    def row_counts(self, org_id: str | None = None) -> dict[tuple[str, str], int]:
        """``tenant_containers`` rows per (org_id, namespace)."""
        query = f"SELECT org_id, namespace, count(*) FROM {TENANT_TABLE}"  # noqa: S608 - constant name
        params: tuple[str, ...] = ()
        if org_id is not None:
            query += " WHERE org_id = %s"
            params = (org_id,)
        with self.connect() as conn:
            try:
                rows = conn.execute(query + " GROUP BY org_id, namespace", params).fetchall()
            except psycopg.errors.UndefinedTable:
                return {}  # no tenant table yet: no tenants
        return {(r[0], r[1]): int(r[2]) for r in rows}

    def containers_index_names(self) -> list[tuple[str, str, str]]:
        """``(org_id, namespace, index_name)`` of every row: the platform's tenant → index map."""
        with self.connect() as conn:
            try:
                return [(r[0], r[1], r[2]) for r in conn.execute(
                    f"SELECT org_id, namespace, index_name FROM {TENANT_TABLE} ORDER BY 1, 2, 3"  # noqa: S608
                ).fetchall()]
            except psycopg.errors.UndefinedTable:
                return []

    def container_rows(self) -> list[tuple[str, str, str, int | None]]:
        """``(org_id, namespace, index_name, doc_count)`` of every row; doc_count is None where
        the platform does not record it (no such column, or NULL)."""
        with self.connect() as conn:
            has_count = conn.execute(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
                "AND column_name = 'doc_count'", (TENANT_TABLE,)).fetchone() is not None
            count = sql.SQL("doc_count") if has_count else sql.SQL("NULL::bigint")
            rows = conn.execute(sql.SQL("SELECT org_id, namespace, index_name, {} FROM {} ORDER BY 1, 2, 3").format(
                count, sql.Identifier(TENANT_TABLE))).fetchall()
        return [(r[0], r[1], r[2], None if r[3] is None else int(r[3])) for r in rows]

    def table_counts(self) -> dict[str, int]:
        """Rows of every table in the public schema (what "the rows are unchanged" compares)."""
        with self.connect() as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                "AND table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
            counts = {}
            for table in tables:
                row = conn.execute(sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table))).fetchone()
                counts[table] = int(row[0]) if row else 0
        return counts

    def wipe(self) -> None:
        """Empty this database's public schema (a scratch database the drill may wipe)."""
        self._writes(what="DROP SCHEMA public CASCADE")
        with self.connect() as conn:
            conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
            conn.execute("CREATE SCHEMA public")

    def table_count(self, table: str = TENANT_TABLE) -> int:
        """``SELECT COUNT(*)``: the runbook's own check of the restored database."""
        with self.connect() as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
        return int(row[0]) if row else 0

    def replace_tenant_rows(self, org_id: str, namespace: str, indices: dict[str, int], prefix: str) -> None:
        """The tenant's rows become exactly ``indices`` (index name → document count)."""
        self._writes()
        with self.connect(autocommit=False) as conn:
            conn.execute(f"DELETE FROM {TENANT_TABLE} WHERE org_id = %s AND namespace = %s",  # noqa: S608
                         (org_id, namespace))
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {TENANT_TABLE} (org_id, namespace, container_name, index_name, doc_count) "  # noqa: S608
                    "VALUES (%s, %s, %s, %s, %s)",
                    [(org_id, namespace, index.removeprefix(prefix), index, n) for index, n in indices.items()])

    def add_container_row(self, org_id: str, namespace: str, container: str, index: str) -> None:
        self._writes()
        with self.connect() as conn:
            conn.execute(f"INSERT INTO {TENANT_TABLE} (org_id, namespace, container_name, index_name) "  # noqa: S608
                         "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", (org_id, namespace, container, index))

    def delete_tenant_rows(self, org_id: str, namespace: str) -> None:
        """Every row of the tenant in every org-scoped table (a tenant's data loss)."""
        self._writes()
        with self.connect(autocommit=False) as conn:
            for table in ORG_TABLES:
                conn.execute(sql.SQL("DELETE FROM {} WHERE org_id = %s AND namespace = %s").format(
                    sql.Identifier(table)), (org_id, namespace))

    def probe(self, timeout_s: int = 3) -> tuple[bool, str]:
        """Does the server accept this role's connections? (readiness of a starting server)"""
        try:
            with psycopg.connect(**{**self.conn.kwargs(), "connect_timeout": timeout_s}) as conn:
                conn.execute("SELECT 1")
            return True, "accepting connections"
        except psycopg.OperationalError as exc:
            return False, _last_line(exc)

    def pg_isready(self, timeout_s: int = 3) -> tuple[bool, str]:
        """The runbook's own check: ``pg_isready -h HOST -p PORT``."""
        argv = [find_client("pg_isready", self.bindir), "-h", self.conn.host, "-p", str(self.conn.port),
                "-t", str(timeout_s)]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s + 2, check=False,
                                    env=self.conn.child_env(), stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, f"no answer within {timeout_s + 2}s"
        return result.returncode == 0, result.stdout.strip() or f"exit {result.returncode}"

    def can_read(self, table: str = TENANT_TABLE) -> tuple[bool, str]:
        """The runbook's permission check (``SELECT * ... LIMIT 1``); a table that is not there
        yet is where a restore stands, not why it failed."""
        try:
            with self.connect() as conn:
                conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(table)))
            return True, "ok"
        except ServiceError as exc:
            return False, exc.message
        except psycopg.Error as exc:
            text = " ".join(str(exc).split())[:200]
            return isinstance(exc, psycopg.errors.UndefinedTable), text

    def may_create_database(self) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        return bool(row and row[0])

    def server_version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "unknown"

    def databases(self, admin: PgConn | None = None) -> list[str]:
        """Every database of the server (pg_database is shared: any database can list it)."""
        with self.connect(as_conn=admin, database="postgres" if admin else None) as conn:
            return sorted(r[0] for r in conn.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall())

    # --- canaries ------------------------------------------------------------------------

    def clear_canaries(self) -> None:
        self._writes()
        with self.connect() as conn:
            conn.execute(f"DELETE FROM {CANARY_TABLE}")  # noqa: S608 - constant name

    @contextlib.contextmanager
    def canary_session(self, write_timeout_s: float) -> Iterator[Callable[[list[CanaryRow]], None]]:
        """One connection for a canary writer. Each call writes one round of canaries (org,
        namespace, seq, written_at) in one transaction: all of them acknowledged or none,
        bounded by ``write_timeout_s``."""
        self._writes()
        with self.connect(timeout_s=24 * 3600) as conn:  # the session lives as long as the writer
            def write(rows: list[CanaryRow]) -> None:
                with Deadline(conn, write_timeout_s) as deadline:
                    try:
                        with conn.transaction(), conn.cursor() as cur:
                            cur.executemany(f"INSERT INTO {CANARY_TABLE} (org_id, namespace, seq, written_at) "  # noqa: S608
                                            "VALUES (%s, %s, %s, %s)", rows)
                    except psycopg.Error as exc:
                        if deadline.fired.is_set():
                            raise ServiceError(f"canary write not answered within {write_timeout_s:g}s") from exc
                        raise
            yield write

    def canary_state(self, org_id: str, namespace: str) -> tuple[int, int | None, datetime | None]:
        """(how many canaries, highest sequence number, newest write time) of a tenant."""
        with self.connect() as conn:
            row = conn.execute(f"SELECT count(*), max(seq), max(written_at) FROM {CANARY_TABLE} "  # noqa: S608
                               "WHERE org_id = %s AND namespace = %s", (org_id, namespace)).fetchone()
        if not row:
            return 0, None, None
        return int(row[0]), (int(row[1]) if row[1] is not None else None), row[2]

    # --- roles (fault injection and the platform's set-up) ------------------------------

    def set_password(self, admin: PgConn, user: str, password: str, *, login: bool = True) -> None:
        self.guard.check(Write("postgres", "request", f"role {user}", "write", "ALTER ROLE"))
        with self.connect(as_conn=admin, database="postgres", writable=True) as conn:
            verifier = _scram_verifier(conn, user, password)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(sql.SQL(verb + " ROLE {} " + ("LOGIN" if login else "NOLOGIN") + " PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(verifier)))

    def revoke_login(self, admin: PgConn, user: str) -> None:
        self._admin(admin, sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(user)),
                    Write("postgres", "request", f"role {user}", "write", "ALTER ROLE"))

    def take_table_away(self, admin: PgConn, table: str = TENANT_TABLE) -> None:
        """The table changes owner and the platform's user loses every right on it."""
        self._admin(admin, sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table),
                                                                       sql.Identifier(admin.user)),
                    Write("postgres", "database", self.conn.database, "write", f"ALTER TABLE {table} OWNER"),
                    database=self.conn.database)

    # --- dumps ---------------------------------------------------------------------------

    def dump_all(self, out: BinaryIO, *, timeout_s: float = 3600) -> None:
        """Plain-SQL ``pg_dump`` of the whole database, as the runbook restores it with psql."""
        argv = [find_client("pg_dump", self.bindir), *self.conn.cli_args(), "--no-owner", "--no-privileges",
                "--format=plain", "--encoding=UTF8"]
        stream_out(argv, self.conn.child_env(), out, tool="pg_dump", timeout_s=timeout_s)

    def dump_org(self, org_id: str, out: BinaryIO, *, timeout_s: float = 3600) -> None:
        """One organisation's rows as a transaction that replaces them: restoring it touches no
        other organisation (the schema itself comes from the whole-database dump)."""
        out.write(b"-- drdrill per-organisation export\nBEGIN;\n")
        with self.connect(autocommit=False, timeout_s=timeout_s) as conn:
            existing = {r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()}
            for table in ORG_TABLES:
                if table not in existing:
                    continue
                columns = [r[0] for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema='public' "
                    "AND table_name=%s ORDER BY ordinal_position", (table,)).fetchall()]
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
                delete = sql.SQL("DELETE FROM public.{} WHERE org_id = {};\n").format(
                    sql.Identifier(table), sql.Literal(org_id))
                out.write(delete.as_string(conn).encode())
                out.write(sql.SQL("COPY public.{} ({}) FROM stdin;\n").format(
                    sql.Identifier(table), cols).as_string(conn).encode())
                with conn.cursor().copy(
                    sql.SQL("COPY (SELECT {} FROM {} WHERE org_id = {} ORDER BY 1, 2) TO STDOUT").format(
                        cols, sql.Identifier(table), sql.Literal(org_id))
                ) as copy:
                    for chunk in copy:
                        out.write(bytes(chunk))
                out.write(b"\\.\n")
                for statement in _sequence_fixups(conn, table):
                    out.write(statement.encode() + b"\n")
        out.write(b"COMMIT;\n")

    def dump_schema(self, out: BinaryIO, *, timeout_s: float = 600) -> None:
        argv = [find_client("pg_dump", self.bindir), *self.conn.cli_args(), "--schema-only", "--no-owner",
                "--no-privileges"]
        stream_out(argv, self.conn.child_env(), out, tool="pg_dump --schema-only", timeout_s=timeout_s)

    # --- restores ------------------------------------------------------------------------

    def recreate_database(self, admin: PgConn) -> None:
        """Drop and create ``es_metadata`` owned by the platform user: the fresh database the
        runbook restores into."""
        self.drop_database(admin, self.conn.database)
        self._admin(admin, sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(self.conn.database), sql.Identifier(self.conn.user)),
            Write("postgres", "database", self.conn.database, "create", "CREATE DATABASE"))

    def create_database(self, admin: PgConn, name: str, *, owner: str | None = None) -> MetadataDb:
        """A new empty database next to this one (refuses to replace an existing one)."""
        if name in self.databases(admin):
            raise ServiceError(f"database {name} already exists", hint="drdrill never replaces a database it "
                               "did not create; remove it or choose another drill id")
        self._admin(admin, sql.SQL("CREATE DATABASE {} OWNER {}").format(
            sql.Identifier(name), sql.Identifier(owner or self.conn.user)),
            Write("postgres", "database", name, "create", "CREATE DATABASE"))
        return self.with_database(name)

    def drop_database(self, admin: PgConn, name: str) -> None:
        self._admin(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
                    Write("postgres", "database", name, "delete", "DROP DATABASE"))

    def copy_tenant_rows(self, source: MetadataDb, org_id: str, namespace: str) -> dict[str, int]:
        """Replace one tenant's rows in every org-scoped table with ``source``'s, in one
        transaction; returns rows copied per table."""
        copied = {}
        self._writes()
        with source.connect() as src, self.connect(autocommit=False) as dst:
            for table in ORG_TABLES:
                where = sql.SQL("WHERE org_id = {} AND namespace = {}").format(sql.Literal(org_id),
                                                                               sql.Literal(namespace))
                dst.execute(sql.SQL("DELETE FROM {} ").format(sql.Identifier(table)) + where)
                rows = 0
                with src.cursor().copy(sql.SQL("COPY (SELECT * FROM {} {}) TO STDOUT").format(
                        sql.Identifier(table), where)) as out, \
                        dst.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as into:
                    for chunk in out:
                        into.write(chunk)
                        rows += bytes(chunk).count(b"\n")
                copied[table] = rows
                for statement in _sequence_fixups(dst, table):
                    dst.execute(statement)
            dst.commit()
        return copied

    def restore_stream(self, feed: Callable[[Writer], object], *, label: str, timeout_s: float = 3600) -> None:
        """``psql --single-transaction -v ON_ERROR_STOP=1`` reading the SQL ``feed`` writes, as
        PostgreSQL's documentation restores a plain dump: all of it or none of it. If ``feed``
        raises, psql is killed before end of input and nothing is committed."""
        self._writes(what=f"psql < {label}")
        argv = [find_client("psql", self.bindir), *self.conn.cli_args(), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "--single-transaction", "-f", "-"]
        stream_into_psql(argv, self.conn.child_env(), feed, label=label, timeout_s=timeout_s)


def _sequence_fixups(conn: psycopg.Connection, table: str) -> list[str]:
    """Rows copied with their ids leave the id sequence behind them; without moving it past the
    highest id, the platform's next INSERT would collide with a restored row."""
    statements = []
    for (column,) in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                  "'public' AND table_name = %s", (table,)).fetchall():
        row = conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (f"public.{table}", column)).fetchone()
        if row and row[0]:
            statements.append(sql.SQL(
                "SELECT setval({seq}, GREATEST((SELECT COALESCE(max({col}), 0) FROM public.{table}), "
                "(SELECT last_value FROM {seq_ident}), 1));").format(
                seq=sql.Literal(row[0]), col=sql.Identifier(column), table=sql.Identifier(table),
                seq_ident=sql.SQL(row[0])).as_string(conn))
    return statements


def _last_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__
