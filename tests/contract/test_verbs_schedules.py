"""Contract: schedules (store/sql/schedules.py), on both stores."""

from __future__ import annotations

import time

from waypost.store import Store
from waypost.store.protocol import Tx

from .helpers import store, while_open

__all__ = ["store"]


def _define(store: Store) -> None:
    store.transact(lambda tx: tx.put_definition("sfp", "s", "dag", "{}"))
    store.transact(lambda tx: tx.put_definition("sfp2", "s", "dag", "{}"))


def test_a_schedule_is_stored_once_and_changed_only_by_new_code(store: Store) -> None:
    _define(store)
    assert store.transact(lambda tx: tx.put_schedule("s", "sfp", '{"every": 60}', 120.0))
    # the same code again keeps its next fire; other code moves it
    assert not store.transact(lambda tx: tx.put_schedule("s", "sfp", '{"every": 60}', 999.0))
    [row] = store.read(lambda tx: tx.schedules())
    assert (row.name, row.fingerprint, row.next_at, row.last_at, row.paused) == (
        "s", "sfp", 120.0, None, False)
    assert store.transact(lambda tx: tx.put_schedule("s", "sfp2", '{"every": 60}', 180.0))
    assert store.transact(lambda tx: tx.put_schedule("s", "sfp2", '{"every": 30}', 150.0))
    [row] = store.read(lambda tx: tx.schedules())
    assert (row.fingerprint, row.spec, row.next_at) == ("sfp2", '{"every": 30}', 150.0)


def test_a_due_schedule_moves_on_once(store: Store) -> None:
    _define(store)
    store.transact(lambda tx: tx.put_schedule("s", "sfp", "{}", 120.0))
    store.transact(lambda tx: tx.put_schedule("t", "sfp", "{}", 100.0))
    assert [r.name for r in store.transact(lambda tx: tx.due_schedules(119.0, 10))] == ["t"]
    assert [r.name for r in store.transact(lambda tx: tx.due_schedules(130.0, 10))] == ["t", "s"]
    assert [r.name for r in store.transact(lambda tx: tx.due_schedules(130.0, 1))] == ["t"]
    assert store.transact(lambda tx: tx.advance_schedule("s", 120.0, 180.0, 120.0, "run-1"))
    # a second worker that read the same due time moves nothing
    assert not store.transact(lambda tx: tx.advance_schedule("s", 120.0, 180.0, 120.0, "run-2"))
    # a due time skipped records no fire, and keeps the last one
    assert store.transact(lambda tx: tx.advance_schedule("s", 180.0, 240.0, None, None))
    row = next(r for r in store.read(lambda tx: tx.schedules()) if r.name == "s")
    assert (row.next_at, row.last_at, row.last_run) == (240.0, 120.0, "run-1")


def test_a_paused_schedule_is_not_due(store: Store) -> None:
    _define(store)
    store.transact(lambda tx: tx.put_schedule("s", "sfp", "{}", 100.0))
    assert store.transact(lambda tx: tx.pause_schedule("s", True, None))
    assert store.transact(lambda tx: tx.due_schedules(500.0, 10)) == []
    assert store.read(lambda tx: tx.schedules())[0].paused is True
    assert store.transact(lambda tx: tx.pause_schedule("s", False, 600.0))
    [row] = store.read(lambda tx: tx.schedules())
    assert (row.paused, row.next_at) == (False, 600.0)
    assert not store.transact(lambda tx: tx.pause_schedule("nobody", True, None))


def test_schedules_taken_out_of_the_code_are_removed(store: Store) -> None:
    _define(store)
    store.transact(lambda tx: tx.put_schedule("s", "sfp", "{}", 100.0))
    store.transact(lambda tx: tx.put_schedule("t", "sfp", "{}", 100.0))
    assert store.transact(lambda tx: tx.drop_schedules(["s", "nobody"])) == ["s"]
    assert store.transact(lambda tx: tx.drop_schedules([])) == []
    assert [r.name for r in store.read(lambda tx: tx.schedules())] == ["t"]


def test_a_due_schedule_another_worker_fires_is_skipped(store: Store) -> None:
    """PostgreSQL: a worker firing a due schedule holds it to the end of its transaction;
    another worker, meanwhile, skips it at once and takes the next (skip locked). SQLite:
    the second runs after the first committed, when the first's fire has moved on."""
    _define(store)
    store.transact(lambda tx: tx.put_schedule("s1", "sfp", '{"every": 60}', 100.0))
    store.transact(lambda tx: tx.put_schedule("s2", "sfp", '{"every": 60}', 200.0))
    now = time.time()

    def fire(tx: Tx) -> list[str]:
        due = tx.due_schedules(now, 1)
        for row in due:
            assert row.next_at is not None
            assert tx.advance_schedule(row.name, row.next_at, now + 60, row.next_at, None)
        return [row.name for row in due]

    assert while_open(store, fire, lambda tx: [r.name for r in tx.due_schedules(now, 10)]) == (
        ["s1"], ["s2"])
