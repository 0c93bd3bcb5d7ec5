"""Contract: the compensation chain of a failed run (store/sql/compensation.py), on both stores."""

from __future__ import annotations

import time

from waypost.store import Store

from .helpers import claim, new_run, run_status, step, steps, store

__all__ = ["store"]


def test_compensation_runs_undo_steps_one_by_one_and_ends_once(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c"),
                     step("undo-0", status="pending", kind="undo", map_index=0),
                     step("undo-1", status="pending", kind="undo", map_index=1))
    got = claim(store, limit=3)
    for c in got[:2]:
        assert store.transact(lambda tx, c=c: tx.succeed(c.id, c.lease_token, f'"{c.name}"'))
        time.sleep(0.01)  # distinct finish times
    assert [r["name"] for r in store.read(lambda tx: tx.compensable(run_id, ["a", "b", "c"]))
            ] == ["b", "a"]
    store.transact(lambda tx: tx.start_compensation(run_id, "c failed", 1))
    run = store.read(lambda tx: tx.get_run(run_id))
    assert (run["status"], run["error"], run["open_steps"]) == ("compensating", "c failed", 1)
    assert store.transact(lambda tx: tx.next_compensation(run_id, 0)) is True
    assert store.transact(lambda tx: tx.next_compensation(run_id, 0)) is False
    store.transact(lambda tx: tx.end_compensation(run_id, "compensated", "running"))
    assert store.read(lambda tx: tx.get_run(run_id))["status"] == "compensating", "fenced"
    store.transact(lambda tx: tx.end_compensation(run_id))
    rows = steps(store, run_id)
    assert (rows["undo-0"]["status"], rows["undo-1"]["status"]) == ("ready", "cancelled")
    run = store.read(lambda tx: tx.get_run(run_id))
    assert (run["status"], run["error"]) == ("compensated", "c failed")
    assert store.transact(lambda tx: tx.set_run_status(run_id, "failed", ["running"])) is False
    assert run_status(store, run_id) == "compensated"
    assert store.transact(lambda tx: tx.set_run_status(run_id, "failed",
                                                       ["compensated"])) is True
    assert run_status(store, run_id) == "failed"
