"""Permanent database errors are raised at once as one line; transient ones are retried.

A permanent error (a value the database cannot store, a size limit, a constraint, bad SQL)
gives the same answer however often it is tried, so retrying it for the store's patience
and then calling the database "unavailable" hides a bad input behind an outage.
"""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from waypost.errors import DatabaseRefused, StoreError
from waypost.store import Store, open_store
from waypost.store.sql import SqlTx


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def tries(store: Store, fn: Callable[[SqlTx], Any]) -> tuple[int, BaseException]:
    """How often `transact` ran `fn` before it raised, and what it raised."""
    count = 0

    def counted(tx: SqlTx) -> Any:
        nonlocal count
        count += 1
        return fn(tx)

    with pytest.raises(StoreError) as info:
        store.transact(counted)
    return count, info.value


def definition(tx: SqlTx) -> None:
    tx.put_definition("fp", "f", "dag", "{}")


def test_a_constraint_violation_is_refused_at_once(store: Store) -> None:
    store.transact(definition)

    def twice(tx: SqlTx) -> None:
        tx.execute("INSERT INTO definitions (fingerprint, name, kind, body, created_at) "
                   "VALUES ('fp', 'f', 'dag', '{}', 0)")

    count, exc = tries(store, twice)
    assert count == 1 and isinstance(exc, DatabaseRefused)
    assert "\n" not in str(exc) and "refused" in str(exc)


def test_bad_sql_is_refused_at_once(store: Store) -> None:
    count, exc = tries(store, lambda tx: tx.execute("SELEKT 1"))
    assert count == 1 and isinstance(exc, DatabaseRefused)


def test_an_oversized_or_unstorable_value_is_refused_at_once(store: Store) -> None:
    """PostgreSQL: a NUL in text, and a key over btree's row size (once retried for 60 s
    and reported as "database unavailable"). SQLite stores both; its size limit is the
    one it refuses."""
    store.transact(definition)

    def run_with_key(key: str) -> Callable[[SqlTx], Any]:
        return lambda tx: tx.insert_run(uuid.uuid4().hex, "f", "fp", key, "{}", "c", 0)

    if store.dialect == "postgres":
        cases = [run_with_key("a\x00b"), run_with_key(secrets.token_urlsafe(6000))]
    else:
        store._conn().setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 10_000)
        cases = [run_with_key("k" * 20_000)]
    for case in cases:
        count, exc = tries(store, case)
        assert count == 1 and isinstance(exc, DatabaseRefused), exc
        assert "\n" not in str(exc)
    assert store.read(lambda tx: tx.list_runs(None, None, 10)) == []


def test_a_transient_error_is_retried_then_reported_unavailable(store: Store) -> None:
    store.patience = 0.2
    exc_type = sqlite3.OperationalError if store.dialect == "sqlite" else None
    if exc_type is None:
        import psycopg

        def fail(tx: SqlTx) -> None:
            raise psycopg.OperationalError("connection lost (injected)")
    else:
        def fail(tx: SqlTx) -> None:
            raise sqlite3.OperationalError("database is locked (injected)")

    count, exc = tries(store, fail)
    assert count > 1 and not isinstance(exc, DatabaseRefused)
    assert str(exc).startswith("database unavailable")


# -- a real full disk (SQLite) -----------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB file system of its own (tmpfs; needs root, as on the project's test box)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (not root?): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\1" * 512)
        except OSError:
            pass
    return filler


def test_a_full_disk_is_an_outage_not_a_refusal(small_disk: Path) -> None:
    """A command gives up after its patience with one line; a worker (infinite patience)
    waits until there is room again and then commits."""
    store = open_store(f"sqlite:///{small_disk / 'waypost.db'}")
    try:
        store.transact(definition)
        big = "x" * 300_000

        def write(tx: SqlTx) -> None:
            tx.put_definition(uuid.uuid4().hex, "f", "dag", big)

        filler = fill(small_disk)
        store.patience = 0.5
        count, exc = tries(store, write)
        assert count > 1 and not isinstance(exc, DatabaseRefused)
        assert "disk is full" in str(exc) and "\n" not in str(exc)
        assert str(exc).startswith("database unavailable")

        store.patience = float("inf")
        done: list[BaseException | None] = []

        def worker() -> None:
            try:
                store.transact(write)
                done.append(None)
            except BaseException as e:  # the assertion below reports it
                done.append(e)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), f"gave up on a full disk: {done}"
        filler.unlink()
        thread.join(30)
        assert done == [None]
        assert store.read(lambda tx: tx.execute(
            "SELECT COUNT(*) FROM definitions").fetchone()[0]) == 2
    finally:
        store.close()


# -- bounded transactions (PostgreSQL) ---------------------------------------------------

@pytest.mark.parametrize("paused_after", ["statement", "batch"])
def test_a_bounded_transaction_left_idle_is_ended_and_retried(db_url: str,
                                                              paused_after: str) -> None:
    """`bound_transactions`: the server ends a transaction idle past the bound (its locks
    go with it) and the retry runs on a new connection; a lock wait past the bound is
    cancelled and retried. SQLite has no such bound (see `Store.bound_transactions`).

    Paused after a batch too: psycopg sends a batch in pipeline mode, and its pipeline
    used to end with a message after which PostgreSQL stopped counting the idle time."""
    import time

    store = open_store(db_url)
    try:
        store.transact(definition)
        store.bound_transactions(0.3)
        calls = 0

        def slow(tx: SqlTx) -> int:
            nonlocal calls
            calls += 1
            if paused_after == "batch":
                tx.executemany("UPDATE definitions SET name = ? WHERE fingerprint = ?",
                               [("g", "fp"), ("g", "fp")])
            else:
                tx.execute("UPDATE definitions SET name = 'g' WHERE fingerprint = 'fp'")
            if calls == 1:
                time.sleep(1.0)  # paused inside the transaction, holding the row
            return calls

        assert store.transact(slow) == (2 if store.dialect == "postgres" else 1)
        assert store.read(lambda tx: tx.execute(
            "SELECT name FROM definitions").fetchone()[0]) == "g"
    finally:
        store.close()


def test_a_lock_wait_past_the_bound_is_retried_not_refused(pg_url: str) -> None:
    import psycopg

    from waypost.store.postgres import split_url

    store = open_store(pg_url)
    try:
        store.transact(definition)
        store.bound_transactions(0.2)
        conninfo, schema = split_url(pg_url)
        holder = psycopg.connect(conninfo)
        holder.execute(f'SET search_path TO "{schema}"')
        holder.execute("SELECT 1 FROM definitions FOR UPDATE")
        calls = 0

        def write(tx: SqlTx) -> None:
            nonlocal calls
            calls += 1
            if calls == 3:
                holder.rollback()  # the lock goes away; the next try gets it
            tx.execute("UPDATE definitions SET name = 'h'")

        try:
            store.transact(write)
        finally:
            holder.close()
        assert calls >= 3
    finally:
        store.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    from tests.conftest import pg_schema_url

    yield from pg_schema_url()
