"""The store: one connection, transactions that retry what is safe to retry, migrations.

A `Store` is used by one thread at a time (each worker loop, each API caller has its own).
`transact(fn)` runs `fn(tx)` in one transaction. A database error is one of two kinds,
and each dialect's `_is_transient` tells them apart:

- transient (busy, locked, a deadlock, a lock or idle timeout, a dropped connection, a
  full disk): the whole function runs again from the start, so `fn` must touch nothing
  but `tx`; after `patience` seconds it is raised as "database unavailable" (a worker's
  patience is infinite: it pauses through an outage);
- permanent (a value the database cannot store, a size limit, a constraint, a syntax
  error): trying again gives the same answer, so it is raised at once as a one-line
  `DatabaseRefused`.

Errors that are not the database's (user code, `WaypostError`s raised inside `fn`) pass
through untouched. No outcome is reported recorded until its commit returned.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

from ..errors import DatabaseRefused, SchemaVersionError, StoreError
from .protocol import Tx
from .sql import SqlTx

T = TypeVar("T")
log = logging.getLogger("waypost.store")


class Store:
    dialect = ""
    tx_class: type[SqlTx] = SqlTx
    #: How long a transient failure is retried before it is raised as a StoreError.
    patience = 60.0

    def __init__(self, url: str) -> None:
        self.url = url

    # -- dialect hooks ------------------------------------------------------------------
    def _begin(self, write: bool) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    #: The driver's own exception classes: anything else raised in a transaction is not
    #: the database's and passes through as it is.
    driver_errors: tuple[type[BaseException], ...] = ()

    def _is_transient(self, exc: BaseException) -> bool:
        """Whether trying the same transaction again later can succeed."""
        raise NotImplementedError

    def _reconnect(self) -> None:
        raise NotImplementedError

    def _conn(self) -> Any:
        raise NotImplementedError

    def _migration_lock(self, tx: SqlTx) -> None:
        """Serialise concurrent migrations (SQLite's write lock already does)."""

    def close(self) -> None:
        raise NotImplementedError

    def wait_for_wakeup(self, timeout: float, interrupt: int | None = None) -> bool:
        """Block until another process says work is ready (where the database can), or
        `interrupt` (a file descriptor) becomes readable."""
        time.sleep(timeout)
        return False

    def bound_transactions(self, seconds: float) -> None:
        """A transaction of this store that sits idle for `seconds` is ended by the
        database, and one waiting that long for another's lock gives up and retries.

        A worker passes its lease. Without a bound, a worker paused inside a transaction
        (SIGSTOP, a VM freeze, a debugger) keeps its locks for as long as it is paused, and
        every worker that needs one of them waits that long. Past the lease nothing the
        paused transaction holds is worth keeping: its leases ran out, so its outcomes
        would be refused anyway.

        SQLite cannot do this, and this base version does nothing: its write lock is a
        lock on the file held by the paused process itself, and no other process may
        break it (nor could it tell a paused writer from a slow one). What can be bounded
        there is how long a worker holds the lock while it runs: write transactions begin
        IMMEDIATE, run no user code and never wait inside, so they last milliseconds, and
        readers (`show`, `runs`) are never blocked (WAL). A writer paused mid-transaction
        still stops all other writers until it resumes or dies: they retry ("database is
        locked" is transient) and carry on the moment its lock is gone.
        """

    # -- transactions -------------------------------------------------------------------
    def transact(self, fn: Callable[[Tx], T], *, write: bool = True) -> T:
        return self._transact(fn, write)

    def read(self, fn: Callable[[Tx], T]) -> T:
        return self._transact(fn, False)

    def _transact(self, fn: Callable[[SqlTx], T], write: bool) -> T:
        """`transact` with the SQL underneath the verbs in reach (for migrations)."""
        deadline = time.monotonic() + self.patience
        delay = 0.005
        while True:
            try:
                self._begin(write)
                try:
                    result = fn(self.tx_class(self._conn()))
                    self._commit()
                    return result
                except BaseException:
                    self._rollback()
                    raise
            except Exception as exc:
                if not self._is_transient(exc):
                    if isinstance(exc, self.driver_errors):
                        raise DatabaseRefused(f"the database refused the transaction (not "
                                              f"retried): {one_line(exc)}") from exc
                    raise
                if time.monotonic() > deadline:
                    raise StoreError(f"database unavailable: {one_line(exc)}") from exc
                log.debug("transient store error, retrying: %s", exc)
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
                self._reconnect()

    # -- migrations ---------------------------------------------------------------------
    def migrations(self) -> list[tuple[int, str]]:
        folder = resources.files("waypost.store") / "migrations" / self.dialect
        found = []
        for item in folder.iterdir():
            if item.name.endswith(".sql"):
                found.append((int(item.name.split("_", 1)[0]), item.read_text()))
        return sorted(found)

    def migrate(self) -> int:
        """Bring the schema up to date; refuse a schema newer than this code."""
        known = self.migrations()

        def apply(tx: SqlTx) -> int:
            self._migration_lock(tx)
            tx.execute("CREATE TABLE IF NOT EXISTS waypost_schema (version INTEGER NOT NULL)")
            row = tx.execute("SELECT MAX(version) FROM waypost_schema").fetchone()
            current = int(row[0] or 0)
            latest = known[-1][0]
            if current > latest:
                raise SchemaVersionError(
                    f"the database has waypost schema {current}, newer than this waypost "
                    f"knows ({latest}); upgrade waypost")
            for version, script in known:
                if version > current:
                    for statement in _statements(script):
                        tx.execute(statement)
                    tx.execute("INSERT INTO waypost_schema (version) VALUES (?)", (version,))
            return latest

        return self._transact(apply, True)


def one_line(exc: BaseException) -> str:
    """The first line of a driver's message (PostgreSQL adds DETAIL and HINT lines)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _statements(script: str) -> list[str]:
    """Split a migration file into statements (our files keep ';' out of strings)."""
    text = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    return [part.strip() for part in text.split(";") if part.strip()]
