"""Contract: gates, sleeps and escalations (store/sql/waits.py), on both stores."""

from __future__ import annotations

from waypost.store import Store

from .helpers import claim, new_run, step, step_id, steps, store

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
