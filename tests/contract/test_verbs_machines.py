"""Contract: state machines (store/sql/machines.py), on both stores."""

from __future__ import annotations

import pytest

from waypost.store import Store
from waypost.store.protocol import Tx

from .helpers import held_to_the_end, new_run, store

__all__ = ["store"]


def test_a_machine_moves_by_fenced_transitions_each_kept_once(store: Store) -> None:
    run_id = new_run(store)
    assert store.read(lambda tx: tx.transitions(run_id, 10)) == []

    def move(to: str, data: str) -> None:
        def go(tx: Tx) -> None:
            before, old, seq = tx.machine(run_id)
            tx.transition(run_id, seq + 1, before, to, "done", None, old, data)
        store.transact(go)

    assert store.transact(lambda tx: tx.machine(run_id)) == (None, None, 0)
    move("a", '{"n":1}')
    move("b", '{"n":2}')
    assert store.transact(lambda tx: tx.machine(run_id)) == ("b", '{"n":2}', 2)
    rows = store.read(lambda tx: tx.transitions(run_id, 10))
    assert [(r["seq"], r["from_state"], r["to_state"], r["data_before"], r["data_after"])
            for r in rows] == [(1, None, "a", None, '{"n":1}'), (2, "a", "b", '{"n":1}', '{"n":2}')]
    assert rows[0]["at"] <= rows[1]["at"]
    assert len(store.read(lambda tx: tx.transitions(run_id, 1))) == 1

    # a writer that read transition 1 cannot move the machine again from there, and the
    # history is not written either
    with pytest.raises(RuntimeError, match="moved on"):
        store.transact(lambda tx: tx.transition(run_id, 2, "a", "c", "done", None, None, "{}"))
    assert len(store.read(lambda tx: tx.transitions(run_id, 10))) == 2
    assert store.transact(lambda tx: tx.machine(run_id)) == ("b", '{"n":2}', 2)
    assert store.transact(lambda tx: tx.machine("no-such-run")) == (None, None, 0)


def test_events_are_stored_once_per_id_and_taken_at_most_once(store: Store) -> None:
    run_id = new_run(store, key="k-1")
    first = store.transact(lambda tx: tx.add_signal(run_id, "paid", "e1", '{"a":1}'))
    assert first[1] is True
    assert store.transact(lambda tx: tx.add_signal(run_id, "paid", "e1", '{"a":2}')) == (
        first[0], False)
    second, _ = store.transact(lambda tx: tx.add_signal(run_id, "paid", None, "null"))
    third, _ = store.transact(lambda tx: tx.add_signal(run_id, "other", None, "null"))
    assert store.read(lambda tx: tx.runs_with_pending_signals(["fp"], 10)) == [run_id]
    assert store.read(lambda tx: tx.runs_with_pending_signals(["other"], 10)) == []
    opened = store.read(lambda tx: tx.open_signals(run_id))
    assert [(e[0], e[1], e[2], e[3], e[4]) for e in opened] == [
        (first[0], "paid", "e1", '{"a":1}', "pending"), (second, "paid", None, "null", "pending"),
        (third, "other", None, "null", "pending")]

    assert store.transact(lambda tx: tx.settle_signal(first[0], "consumed", "s1")) is True
    assert store.transact(lambda tx: tx.settle_signal(first[0], "ignored", "s2")) is False
    assert store.transact(lambda tx: tx.settle_signal(second, "deferred", "s1")) is True
    assert store.transact(lambda tx: tx.settle_signal(second, "consumed", "s2")) is True
    assert store.transact(lambda tx: tx.settle_signal(third, "deferred", "s2")) is True
    assert [e[0] for e in store.read(lambda tx: tx.open_signals(run_id))] == [third]
    assert store.read(lambda tx: tx.runs_with_pending_signals(["fp"], 10)) == [], "deferred waits"
    rows = store.read(lambda tx: tx.signals_of(run_id, 10))
    assert [(r["seq"], r["status"], r["state"]) for r in rows] == [
        (first[0], "consumed", "s1"), (second, "consumed", "s2"), (third, "deferred", "s2")]
    assert all(r["handled_at"] >= r["created_at"] for r in rows)
    assert store.read(lambda tx: tx.signal(run_id, second, None)) == rows[1]
    assert store.read(lambda tx: tx.signal(run_id, None, "e1")) == rows[0]
    assert store.read(lambda tx: tx.signal(run_id, None, "nope")) is None


def test_machine_holds_the_runs_row_to_the_end_of_the_transaction(store: Store) -> None:
    run_id = new_run(store)
    held_to_the_end(store, lambda tx: tx.machine(run_id), lambda tx: tx.get_run(run_id))
