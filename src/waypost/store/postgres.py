"""PostgreSQL: many workers on many machines, SKIP LOCKED claims, LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import contextlib
import hashlib
import re
import select
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors

from ..errors import StoreError
from .base import Store
from .records import ClaimedStep, HeldStep
from .sql import SqlTx
from .sql.machines import _moved_on

# Connection failures (08), serialization failures and deadlocks, insufficient resources
# (53: disk full, out of memory, too many connections), a lock or idle-in-transaction
# timeout, a cancelled statement, a server shutting down or starting, system I/O (58).
_TRANSIENT_STATES = ("08", "40001", "40P01", "53", "55P03", "57014", "57P01", "57P02",
                     "57P03", "25P03", "58")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _Pipeline(psycopg.Pipeline):
    """psycopg's pipeline (which its `executemany` uses), ending on its Sync message.

    psycopg's own ends with a Flush request after the Sync. PostgreSQL stops a session's
    `idle_in_transaction_session_timeout` on every message it gets and starts it again
    only when it next says it is ready for a query, which a Flush does not make it say:
    after a batch, a worker paused inside its transaction held its locks for as long as
    it was paused (see `PostgresStore.bound_transactions`). Ending on the Sync, with every
    result read, leaves the timer running. This overrides a private step of psycopg's
    (3.2, 3.3), and only where psycopg still has the steps it is made of;
    `test_a_bounded_transaction_left_idle_is_ended_and_retried[batch]` fails if it
    stops working.
    """

    def _exit_gen(self) -> Any:
        try:
            self._enqueue_sync()
            yield from self._communicate_gen()
        finally:
            yield from self._fetch_gen(flush=False)


_ENDS_ON_SYNC = all(hasattr(psycopg.Pipeline, step) for step in (
    "_exit_gen", "_enqueue_sync", "_communicate_gen", "_fetch_gen"))


@contextlib.contextmanager
def pipeline(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Statements sent without waiting for each other's results, in one round trip."""
    if _ENDS_ON_SYNC and getattr(conn, "_pipeline", False) is None:
        conn._pipeline = _Pipeline(conn)
    with conn.pipeline():
        yield


class PostgresTx(SqlTx):
    # statement_timestamp() is stable within a statement, so the planner can use it as an
    # index bound (clock_timestamp() is volatile and forces a filter on every row).
    NOW = "extract(epoch from statement_timestamp())::double precision"
    RANDOM = "replace(gen_random_uuid()::text, '-', '')"  # PostgreSQL 13+: strong random
    LOCK = "FOR UPDATE"
    SHARE = "FOR SHARE"
    SKIP_LOCKED = "FOR UPDATE SKIP LOCKED"
    INPUT_HAS = "strpos(input, ?) > 0"
    INPUT_AT = "(input::jsonb #> ?::text[]) = ?::jsonb"

    @staticmethod
    def _json_path(parts: list[str]) -> str:
        return "{" + ",".join(parts) + "}"
    channel = "waypost_ready"

    def _translate(self, text: str) -> str:
        return super()._translate(text).replace("?", "%s")

    def _many(self, sql: str, rows: list[Sequence[Any]]) -> None:
        with pipeline(self.conn), self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def transition(self, run_id: str, seq: int, from_state: str | None, to_state: str,
                   trigger: str, event_id: str | None, data_before: str | None,
                   data_after: str) -> None:
        # One round trip: the fenced update and the history row, in one statement.
        cur = self.execute(
            "WITH moved AS (UPDATE runs SET state = ?, data = ?, transitions = ? "
            "WHERE id = ? AND transitions = ? RETURNING id) "
            "INSERT INTO transitions (run_id, seq, from_state, to_state, trigger, event_id, "
            "data_before, data_after, at) SELECT id, ?, ?, ?, ?, ?, ?, ?, {now} FROM moved",
            (to_state, data_after, seq, run_id, seq - 1, seq, from_state, to_state, trigger,
             event_id, data_before, data_after))
        if cur.rowcount != 1:
            raise _moved_on(run_id, seq)

    def succeed_many(self, done: Sequence[tuple[int, str, str]]) -> list[HeldStep | None]:
        # One round trip for the whole batch (psycopg pipelines executemany).
        if len(done) < 2:
            return super().succeed_many(done)
        held: list[HeldStep | None] = []
        with pipeline(self.conn), self.conn.cursor() as cur:
            cur.executemany(self.sql(self.SUCCEED), [(o, i, t) for i, t, o in done],
                            returning=True)
            while True:
                row = cur.fetchone()
                held.append(None if row is None else HeldStep(*row))
                if not cur.nextset():
                    break
        return held

    def claim(self, owner: str, batch: str, limit: int, lease: float, tasks: Sequence[str],
              external: Sequence[str] = (), alone: bool = False) -> list[ClaimedStep]:
        # Take ready steps in index order and stop at `limit`. Planner statistics lag behind
        # a big fan-out (10,000 fresh ready rows look like a handful), and the plan they
        # suggest sorts every ready row on every claim. Only for this transaction: for a
        # whole session it ruins the plans of other statements.
        self.conn.execute("SET LOCAL enable_sort = off")
        return super().claim(owner, batch, limit, lease, tasks, external, alone)

    def notify(self) -> None:
        self.conn.execute("SELECT pg_notify(%s, '')", (self.channel,))

    # An emit and a wait starting on one topic must not miss each other: the wait takes
    # the topic's advisory lock exclusively before it looks for stored events, an emit
    # shares it when it looks for waits (after storing its event), so one sees the other.
    def lock_topic(self, topic: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (_topic_lock(topic),))

    def wait_shapes(self, topic: str) -> list[str]:
        rows = self.execute("SELECT s.fields FROM (SELECT pg_advisory_xact_lock_shared(?)) l "
                            "LEFT JOIN topic_wait_shapes s ON s.topic = ?",
                            (_topic_lock(topic), topic)).fetchall()
        return [str(r[0]) for r in rows if r[0] is not None]


def _topic_lock(topic: str) -> int:
    """A topic's advisory lock id: 64 bits of its hash (a collision only shares a lock)."""
    digest = hashlib.sha256(f"waypost.topic:{topic}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def split_url(url: str) -> tuple[str, str]:
    """Take waypost's own `schema=` option out of a PostgreSQL URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next((v for k, v in query if k == "schema"), "public")
    if not _SCHEMA.match(schema):
        raise StoreError(f"schema={schema!r} is not a plain lower-case SQL name")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


class PostgresStore(Store):
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.conninfo, self.schema = split_url(url)
        channel = "waypost_ready" if self.schema == "public" else f"waypost_ready_{self.schema}"
        self.tx_class = type("Tx", (PostgresTx,), {"channel": channel})
        self.channel = channel
        self._connection: psycopg.Connection[Any] | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._bound: float | None = None
        self._connect()

    def _open(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5,
                                   application_name=f"waypost:{self.schema}")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._where()}: "
                             f"{str(exc).strip().splitlines()[0]}") from exc
        if self.schema != "public":
            # Another process may create it at the same moment.
            with contextlib.suppress(pg_errors.UniqueViolation):
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.execute(f'SET search_path TO "{self.schema}"')
        return conn

    def _where(self) -> str:
        parts = urlsplit(self.conninfo)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    def _connect(self) -> None:
        self._connection = self._open()
        if self._bound is not None:
            self._apply_bound(self._connection)

    def bound_transactions(self, seconds: float) -> None:
        """The server ends a session idle in a transaction for `seconds` (its locks go with
        it; when the paused worker resumes, its commit fails, the transaction is retried
        on a new connection and its stale outcomes are refused by the lease fence), and a
        lock wait longer than `seconds` is cancelled (transient: retried)."""
        self._bound = seconds
        if self._connection is not None and not self._connection.closed:
            self._apply_bound(self._connection)

    def _apply_bound(self, conn: psycopg.Connection[Any]) -> None:
        ms = max(1, int(self._bound * 1000)) if self._bound else 0
        conn.execute(f"SET idle_in_transaction_session_timeout = {ms}")
        conn.execute(f"SET lock_timeout = {ms}")

    def _conn(self) -> Any:
        if self._connection is None or self._connection.closed:
            self._connect()
        return self._connection

    def _begin(self, write: bool) -> None:
        # A read (`show`, `runs`) sees one snapshot, as on SQLite: under READ COMMITTED each
        # statement had its own, and a run could read `running` beside a step that its
        # escalation, committed between the two statements, had made `needs_attention`.
        self._conn().execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ "
                             "READ ONLY")

    def _commit(self) -> None:
        self._conn().execute("COMMIT")

    def _rollback(self) -> None:
        conn = self._connection
        if conn is not None and not conn.closed:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                conn.close()

    driver_errors = (psycopg.Error,)

    def _is_transient(self, exc: BaseException) -> bool:
        # By SQLSTATE, not by psycopg's class: its OperationalError also covers size limits
        # (class 54), which no retry can fix.
        if isinstance(exc, StoreError):
            return "cannot connect" in str(exc)
        if not isinstance(exc, psycopg.Error):
            return False
        if exc.sqlstate is None:  # raised by psycopg itself: the connection went away
            conn = self._connection
            return isinstance(exc, psycopg.OperationalError) or (
                isinstance(exc, psycopg.InterfaceError) and (conn is None or conn.closed))
        return exc.sqlstate.startswith(_TRANSIENT_STATES)

    def _reconnect(self) -> None:
        conn = self._connection
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            self._connection = None
            with contextlib.suppress(StoreError):  # the next try of transact() tries again
                self._connect()

    def _migration_lock(self, tx: SqlTx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"waypost:{self.schema}",))

    def wait_for_wakeup(self, timeout: float, interrupt: int | None = None) -> bool:
        # select() in our own hands: it sleeps without the GIL, so a listening thread never
        # slows the worker loop that shares the process.
        try:
            if self._listener is None or self._listener.closed:
                self._listener = self._open()
                self._listener.execute(f'LISTEN "{self.channel}"')
            fds = [self._listener.fileno()] + ([] if interrupt is None else [interrupt])
            readable, _, _ = select.select(fds, [], [], timeout)
            if self._listener.fileno() not in readable:
                return False
            return bool(list(self._listener.notifies(timeout=0)))
        except (psycopg.Error, StoreError, OSError):
            if self._listener is not None:
                self._listener.close()
            self._listener = None
            time.sleep(min(timeout, 0.5))
            return False

    def close(self) -> None:
        for conn in (self._connection, self._listener):
            if conn is not None:
                conn.close()
        self._connection = self._listener = None
