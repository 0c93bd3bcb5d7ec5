"""Contract: state machines (store/sql/machines.py), on both stores."""

from __future__ import annotations

import pytest

from waypost.errors import DatabaseRefused
from waypost.store import Store
from waypost.store.protocol import Tx

from .helpers import new_run, store

__all__ = ["store"]


def test_a_machine_moves_by_fenced_transitions_each_kept_once(store: Store) -> None:
    run_id = new_run(store)
    assert store.read(lambda tx: tx.transitions(run_id, 10)) == []

    def move(to: str, data: str) -> None:
        def go(tx: Tx) -> None:
            before, old, seq = tx.machine(run_id)
            tx.set_machine(run_id, to, data, seq + 1)
            tx.add_transition(run_id, seq + 1, before, to, "done", None, old, data)
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

    # a writer that read transition 1 cannot move the machine again from there
    with pytest.raises(RuntimeError, match="moved on"):
        store.transact(lambda tx: tx.set_machine(run_id, "c", "{}", 2))
    with pytest.raises(DatabaseRefused):
        store.transact(lambda tx: tx.add_transition(run_id, 2, "a", "c", "done", None, None,
                                                    "{}"))
    assert store.transact(lambda tx: tx.machine(run_id)) == ("b", '{"n":2}', 2)
    assert store.transact(lambda tx: tx.machine("no-such-run")) == (None, None, 0)
