"""Rows made with the store's own verbs, so the contract tests need nothing but a store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest

from tests.conftest import PG_BASE
from waypost.errors import StoreError
from waypost.store import Store, open_store
from waypost.store.postgres import split_url
from waypost.store.protocol import Tx
from waypost.store.records import ClaimedStep, NewStep, StepRow

TASK = "mod:t"
A = TypeVar("A")
B = TypeVar("B")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def step(name: str, status: str = "ready", waiting_on: int = 0, **kw: Any) -> NewStep:
    return NewStep(name, kw.pop("node", name), kw.pop("task", TASK), kw.pop("kind", "task"),
                   status, waiting_on, kw.pop("max_attempts", 3), kw.pop("timeout", None),
                   input=kw.pop("input", '{"x": 1}'), input_checksum="c", **kw)


def new_run(store: Store, *steps: NewStep, key: str | None = None,
            flow: str = "mod:flow") -> str:
    """A pending run with `steps` (default: ready `a`, `b` pending on one)."""
    run_id = uuid.uuid4().hex
    made = list(steps) or [step("a"), step("b", status="pending", waiting_on=1)]

    def work(tx: Tx) -> None:
        tx.put_definition("fp", "flow", "dag", "{}")
        assert tx.insert_run(run_id, flow, "fp", key, '{"x": 1}', "sum", len(made))
        tx.insert_steps(run_id, made, [f"{run_id}/{s.name}" for s in made])

    store.transact(work)
    return run_id


def steps(store: Store, run_id: str) -> dict[str, StepRow]:
    return {s["name"]: s for s in store.read(lambda tx: tx.steps_of(run_id))}


def step_id(store: Store, run_id: str, name: str) -> int:
    return int(steps(store, run_id)[name]["id"])


def claim(store: Store, owner: str = "w1", token: str = "t1", lease: float = 30.0,
          limit: int = 10, tasks: tuple[str, ...] = (TASK,)) -> list[ClaimedStep]:
    return store.transact(lambda tx: tx.claim(owner, token, limit, lease, tasks))


def statuses(store: Store, run_id: str) -> dict[str, str]:
    return {name: row["status"] for name, row in steps(store, run_id).items()}


def run_status(store: Store, run_id: str) -> str:
    run = store.read(lambda tx: tx.get_run(run_id))
    assert run is not None
    return str(run["status"])


def waiting_on_lock(dialect: str, statement: str, url: str | None = None) -> None:
    """Return once another PostgreSQL session (of the store at `url`, if given) waits on a
    lock in `statement` (at once on SQLite, whose second writer waits for the first to
    commit anyway)."""
    if dialect != "postgres":
        return
    app = f"waypost:{split_url(url)[1]}" if url else "%"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        for _ in range(100):
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND position(%s in query) > 0 AND application_name "
                            "LIKE %s", (statement, app)).fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"nobody waits on a lock in {statement!r}")


def held_to_the_end(store: Store, lock: Callable[[Tx], Any], read: Callable[[Tx], Any]) -> None:
    """PostgreSQL: while one transaction holds `lock`, another taking it waits (past its
    0.2 s bound it gives up as unavailable) yet `read` passes; after the commit it is free.
    Nothing to show on SQLite, where every write transaction is serial already."""
    if store.dialect != "postgres":
        return
    other = open_store(store.url)
    other.bound_transactions(0.2)  # a lock wait past 0.2 s is cancelled (and retried)
    other.patience = 0.5
    try:
        def held(tx: Tx) -> None:
            assert lock(tx)
            with pytest.raises(StoreError, match="unavailable"):
                other.transact(lock)
            assert other.transact(read), "reads pass"

        store.transact(held)
        assert other.transact(lock), "free after"
    finally:
        other.close()


def while_open(store: Store, first: Callable[[Tx], A], second: Callable[[Tx], B],
               waits_in: str | None = None) -> tuple[A, B]:
    """Run `first` in a transaction of `store` and, while it is open, `second` in a
    transaction of a second connection to the same database (in a thread); both results.

    PostgreSQL: with `waits_in`, `second` must wait on a lock in that statement and end
    only after `first` committed (so it sees what `first` did); without, `second` must end
    while `first` is still open (it waited for no lock: skip locked). A broken promise
    fails within seconds, never hangs. SQLite's write transactions are serial (BEGIN
    IMMEDIATE), so there `second` always runs after `first` committed: only the outcome
    can be asserted, which is what the promise comes to with one writer at a time."""
    other = open_store(store.url)
    done = threading.Event()
    got: list[Any] = []

    def run_second() -> None:
        try:
            got.append(other.transact(second))
        except BaseException as exc:  # handed to the test's thread
            got.append(exc)
        finally:
            done.set()

    racer = threading.Thread(target=run_second, daemon=True)

    def run_first(tx: Tx) -> A:
        result = first(tx)
        racer.start()
        if store.dialect == "postgres":
            if waits_in is None:
                assert done.wait(10), "the second transaction waited for the first"
            else:
                waiting_on_lock(store.dialect, waits_in, store.url)
                assert not done.is_set(), "the second transaction did not wait"
        return result

    try:
        ours = store.transact(run_first)
    finally:
        if racer.ident is not None:
            racer.join(30)
        other.close()
    assert done.is_set() and got, "the second transaction never ended"
    if isinstance(got[0], BaseException):
        raise got[0]
    return ours, got[0]
