"""Contract: gates, sleeps and escalations (store/sql/waits.py), on both stores."""

from __future__ import annotations

import threading

from waypost.errors import DatabaseRefused
from waypost.store import Store, open_store
from waypost.store.protocol import Tx

from .helpers import (
    claim,
    held_to_the_end,
    new_run,
    run_status,
    statuses,
    step,
    step_id,
    steps,
    store,
    waiting_on_lock,
    while_open,
)

__all__ = ["store"]


def test_a_wait_ends_once_and_only_from_the_status_it_was_in(store: Store) -> None:
    run_id = new_run(store, step("g", status="pending", waiting_on=1),
                     step("s", status="pending", waiting_on=1))
    store.transact(lambda tx: tx.make_waiting(run_id, "g", None))
    store.transact(lambda tx: tx.make_waiting(run_id, "s", 0.0))
    due = store.transact(lambda tx: tx.due_waits(10))
    g, s = step_id(store, run_id, "g"), step_id(store, run_id, "s")
    assert due == [(s, run_id, "s", "task", "waiting")]
    assert store.transact(lambda tx: tx.end_wait(s, "needs_attention", "failed", None,
                                                 "x")) is None
    held = store.transact(lambda tx: tx.end_wait(s, "waiting", "succeeded", "null", None))
    assert held is not None and held.name == "s"
    assert store.transact(lambda tx: tx.end_wait(s, "waiting", "failed", None, "x")) is None
    assert store.transact(lambda tx: tx.due_waits(10)) == []
    assert store.transact(lambda tx: tx.escalate_wait(g)) is True
    assert store.transact(lambda tx: tx.escalate_wait(g)) is False
    found = store.transact(lambda tx: tx.step_named(run_id, "g"))
    assert found is not None and (found["id"], found["status"]) == (g, "needs_attention")
    assert store.transact(lambda tx: tx.step_named(run_id, "nope")) is None


def test_escalate_attention_and_an_operators_retry(store: Store) -> None:
    run_id = new_run(store, step("a", max_attempts=1))
    (a,) = claim(store)
    assert store.transact(lambda tx: tx.end_attempt(a.id, a.lease_token, "failed", "boom",
                                                    False))
    store.transact(lambda tx: tx.escalate(a.id, "boom", None))
    store.transact(lambda tx: tx.attention(run_id))
    assert store.read(lambda tx: tx.get_run(run_id))["status"] == "needs_attention"
    assert store.transact(lambda tx: tx.due_waits(10)) == [], "no timeout: waits for a person"
    assert store.read(lambda tx: tx.failed_attempts(a.id)) == 1
    store.transact(lambda tx: tx.record_decision(a.id, "retried", "ann", "try again"))
    store.transact(lambda tx: tx.record_decision(a.id, "note", None, None))
    assert store.transact(lambda tx: tx.retry_now(a.id, "waiting", 2)) is False
    assert store.transact(lambda tx: tx.retry_now(a.id, "needs_attention", 2)) is True
    assert store.transact(lambda tx: tx.retry_now(a.id, "needs_attention", 3)) is False
    store.transact(lambda tx: tx.attention(run_id))
    assert store.read(lambda tx: tx.get_run(run_id))["status"] == "running"
    history = store.read(lambda tx: tx.attempts_of_step(a.id))
    assert [(h["attempt"], h["outcome"], h["worker"]) for h in history] == [
        (-2, "note", None), (-1, "retried", "ann"), (1, "failed", "w1")]
    row = steps(store, run_id)["a"]
    assert (row["status"], row["max_attempts"], row["error"]) == ("ready", 2, None)


def test_escalate_with_a_timeout_comes_due(store: Store) -> None:
    new_run(store, step("a"))
    (a,) = claim(store)
    store.transact(lambda tx: tx.escalate(a.id, "boom", 0.0))
    assert [d[0] for d in store.transact(lambda tx: tx.due_waits(10))] == [a.id]


def test_make_waiting_moves_only_a_pending_step(store: Store) -> None:
    run_id = new_run(store, step("a"), step("g", status="pending", waiting_on=1))
    g = step_id(store, run_id, "g")
    assert store.transact(lambda tx: tx.make_waiting(run_id, "a", 0.0)) is None, "ready"
    assert store.transact(lambda tx: tx.make_waiting(run_id, "nope", 0.0)) is None
    assert store.transact(lambda tx: tx.make_waiting(run_id, "g", None)) == g
    assert store.transact(lambda tx: tx.make_waiting(run_id, "g", 0.0)) is None, "once"
    assert statuses(store, run_id) == {"a": "ready", "g": "waiting"}
    assert steps(store, run_id)["g"]["ready_at"] is None, "the first call's due time"
    assert store.transact(lambda tx: tx.due_waits(10)) == []


def test_escalate_moves_only_a_running_step_and_attention_only_an_open_run(
        store: Store) -> None:
    run_id = new_run(store, step("a"), step("p", status="pending", waiting_on=1))
    (a,) = claim(store)
    p = step_id(store, run_id, "p")
    store.transact(lambda tx: tx.escalate(p, "not running", None))
    store.transact(lambda tx: tx.escalate(a.id, "boom", None))
    store.transact(lambda tx: tx.escalate(a.id, "again", 0.0))
    rows = steps(store, run_id)
    assert (rows["p"]["status"], rows["p"]["error"]) == ("pending", None)
    assert (rows["a"]["status"], rows["a"]["error"], rows["a"]["lease_owner"]) == (
        "needs_attention", "boom", None), "escalated once"
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "late")) is None
    assert store.transact(lambda tx: tx.end_run(run_id, "cancelled", "stop"))
    store.transact(lambda tx: tx.attention(run_id))
    assert run_status(store, run_id) == "cancelled", "an ended run stays ended"


def test_two_decisions_at_once_on_one_step_collide(db_url: str, store: Store) -> None:
    """PostgreSQL: the second decision waits on the first's key and is refused when it
    commits (SQLite's writers are serial, so there the second is numbered after)."""
    run_id = new_run(store, step("a"))
    a = step_id(store, run_id, "a")
    other = open_store(db_url)
    outcome: list[str] = []

    def second() -> None:
        try:
            other.transact(lambda tx: tx.record_decision(a, "retried", "bob", None))
            outcome.append("recorded")
        except DatabaseRefused:
            outcome.append("refused")

    racer = threading.Thread(target=second)

    def first(tx: Tx) -> None:
        tx.record_decision(a, "approved", "ann", None)
        racer.start()
        waiting_on_lock(store.dialect, "INSERT INTO attempts")

    try:
        store.transact(first)
        racer.join()
    finally:
        other.close()
    history = store.read(lambda tx: tx.attempts_of_step(a))
    if store.dialect == "postgres":
        assert outcome == ["refused"]
        assert [(h["attempt"], h["worker"]) for h in history] == [(-1, "ann")]
    else:
        assert outcome == ["recorded"]
        assert [(h["attempt"], h["worker"]) for h in history] == [(-2, "bob"), (-1, "ann")]


def test_step_named_holds_the_steps_row_to_the_end_of_the_transaction(store: Store) -> None:
    run_id = new_run(store)
    held_to_the_end(store, lambda tx: tx.step_named(run_id, "a"),
                    lambda tx: tx.steps_of(run_id))


def test_the_sweepers_due_waits_skip_what_another_sweeper_holds(store: Store) -> None:
    """PostgreSQL: a sweeper that read a due wait holds it to the end of its transaction;
    another sweeper, meanwhile, skips it at once and takes the next (skip locked). SQLite:
    the second runs after the first committed, when the first's wait has ended."""
    run_id = new_run(store, step("s1", status="pending", waiting_on=1),
                     step("s2", status="pending", waiting_on=1))
    store.transact(lambda tx: tx.make_waiting(run_id, "s1", 0.0))
    store.transact(lambda tx: tx.make_waiting(run_id, "s2", 0.0))

    def sweep(tx: Tx) -> list[str]:
        due = tx.due_waits(1)
        for sid, _, _, _, was in due:
            assert tx.end_wait(sid, was, "succeeded", "null", None) is not None
        return [d[2] for d in due]

    assert while_open(store, sweep, lambda tx: [d[2] for d in tx.due_waits(10)]) == (
        ["s1"], ["s2"])
