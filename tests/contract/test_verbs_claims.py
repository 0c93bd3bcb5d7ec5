"""Contract: claims, leases and outcomes (store/sql/claims.py). Every outcome is fenced by
the attempt's lease token, a live lease and the step still running: a wrong token, a
lease that ran out or a second report matches nothing."""

from __future__ import annotations

import time

from waypost.store import Store

from .helpers import TASK, claim, new_run, step, step_id, steps, store

__all__ = ["store"]


def test_claim_takes_ready_due_steps_of_the_tasks_served_oldest_first(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c", task="other"),
                     step("d", status="pending", waiting_on=1))
    b = step_id(store, run_id, "b")
    store.transact(lambda tx: tx.retry_later(b, 3600.0, "later"))
    got = claim(store, "w1", "t1", limit=5)
    assert [c.name for c in got] == ["a"]
    assert (got[0].lease_token, got[0].attempts, got[0].task) == ("t1", 1, TASK)
    assert claim(store, "w2", "t2") == [], "a step is claimed once"
    assert store.transact(lambda tx: tx.claim("w", "t", 0, 30.0, [TASK])) == []
    assert store.read(lambda tx: tx.claimed_with("w1", "t1")) == got
    assert store.read(lambda tx: tx.claimed_with("w1", "other")) == []
    due = store.read(lambda tx: tx.next_ready_at([TASK]))
    assert due is not None and due > store.read(lambda tx: tx.now()) + 3000
    assert store.read(lambda tx: tx.next_ready_at(["nothing"])) is None
    row = steps(store, run_id)["a"]
    assert (row["status"], row["lease_owner"]) == ("running", "w1")


def test_succeed_is_fenced_by_token_live_lease_and_status(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store, lease=30.0)
    assert store.transact(lambda tx: tx.succeed(a.id, "forged", "1")) is None
    held = store.transact(lambda tx: tx.succeed(a.id, "t1", "1"))
    assert held is not None and (held.id, held.run_id, held.name) == (a.id, run_id, "a")
    assert store.transact(lambda tx: tx.succeed(a.id, "t1", "again")) is None
    got = store.transact(lambda tx: tx.succeed_many([(b.id, "t1", "2"), (a.id, "t1", "3"),
                                                     (b.id, "t1", "4")]))
    assert [None if h is None else h.name for h in got] == ["b", None, None]
    rows = steps(store, run_id)
    assert (rows["a"]["output"], rows["b"]["output"]) == ("1", "2")
    assert rows["a"]["lease_owner"] is None and rows["a"]["status"] == "succeeded"


def test_an_expired_lease_or_a_passed_timeout_refuses_the_outcome(store: Store) -> None:
    new_run(store, step("a"), step("b", timeout=0.1))
    a, b = claim(store, lease=0.2)
    store.transact(lambda tx: tx.renew("w1", 0.2))
    time.sleep(0.35)
    assert store.transact(lambda tx: tx.succeed(a.id, "t1", "1")) is None
    assert store.transact(lambda tx: tx.succeed(b.id, "t1", "1")) is None
    assert store.transact(lambda tx: tx.renew("w1", 30.0)) == set(), "never revived"
    expired = {e.step_id: e for e in store.read(lambda tx: tx.expired(10))}
    assert set(expired) == {a.id, b.id}
    assert expired[b.id].reason == "timeout" and expired[a.id].reason == "lost"
    assert expired[a.id].lease_token == "t1" and expired[a.id].owner == "w1"
    assert store.read(lambda tx: tx.expired(1)) and len(store.read(
        lambda tx: tx.expired(1))) == 1


def test_renew_and_beat_need_the_live_lease(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store, lease=30.0)
    assert store.transact(lambda tx: tx.renew("w1", 30.0)) == {(a.id, "t1"), (b.id, "t1")}
    assert store.transact(lambda tx: tx.renew("w2", 30.0)) == set()
    store.transact(lambda tx: tx.beat(a.id, "t1", '{"p": 1}'))
    store.transact(lambda tx: tx.beat(b.id, "forged", '{"p": 2}'))
    rows = steps(store, run_id)
    assert rows["a"]["heartbeat_details"] == '{"p": 1}'
    assert rows["b"]["heartbeat_details"] is None


def test_end_attempt_records_history_for_the_live_or_the_expired_holder(
        store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store, lease=30.0)
    assert store.transact(lambda tx: tx.end_attempt(a.id, "t1", "failed", "e", True)) is None
    assert store.transact(lambda tx: tx.end_attempt(a.id, "t9", "failed", "e", False)) is None
    held = store.transact(lambda tx: tx.end_attempt(a.id, "t1", "failed", "boom", False))
    assert held is not None and held.attempts == 1 and held.max_attempts == 3
    assert steps(store, run_id)["a"]["status"] == "running", "the caller decides what next"
    store.transact(lambda tx: tx.retry_later(a.id, 0.0, "boom", extra_attempt=True))
    store.transact(lambda tx: tx.expire_owner("w1"))
    assert store.transact(lambda tx: tx.end_attempt(b.id, "t1", "lost", "gone", False)) is None
    assert store.transact(lambda tx: tx.end_attempt(b.id, "t1", "lost", "gone", True))
    store.transact(lambda tx: tx.fail(b.id, "gone"))
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["max_attempts"], rows["a"]["lease_owner"]) == (
        "ready", 4, None)
    assert (rows["b"]["status"], rows["b"]["error"]) == ("failed", "gone")
    assert store.read(lambda tx: tx.lost_attempts(b.id)) == 1
    assert store.read(lambda tx: tx.lost_attempts(a.id)) == 0
    assert [h["outcome"] for h in store.read(lambda tx: tx.attempts_of(run_id))] == [
        "failed", "lost"]


def test_retry_later_waits_its_delay(store: Store) -> None:
    run_id = new_run(store, step("a"))
    (a,) = claim(store)
    store.transact(lambda tx: tx.end_attempt(a.id, "t1", "failed", "e", False))
    store.transact(lambda tx: tx.retry_later(a.id, 3600.0, "e"))
    assert claim(store, "w2", "t2") == []
    assert steps(store, run_id)["a"]["max_attempts"] == 3


def test_expire_queued_fails_only_steps_still_ready(store: Store) -> None:
    run_id = new_run(store, step("a", queue_timeout=0.0), step("b", queue_timeout=0.0),
                     step("c", queue_timeout=3600.0))
    store.transact(lambda tx: tx.claim("w", "t", 1, 30.0, [TASK]))
    held = store.transact(lambda tx: tx.expire_queued("no worker", 10))
    assert [h.name for h in held] == ["b"]
    rows = steps(store, run_id)
    assert {n: r["status"] for n, r in rows.items()} == {
        "a": "running", "b": "failed", "c": "ready"}


def test_hand_off_then_external_completion_with_the_token_once(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store)
    assert store.transact(lambda tx: tx.hand_off(a.id, "forged", "ct-a")) is False
    assert store.transact(lambda tx: tx.hand_off(a.id, "t1", "x.ct-a")) is True
    assert store.transact(lambda tx: tx.hand_off(b.id, "t1", "x.ct-b")) is True
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["lease_owner"]) == ("running", None)
    assert store.transact(lambda tx: tx.renew("w1", 30.0)) == set(), "no lease to renew"
    assert store.transact(lambda tx: tx.complete_external(a.id, "x.wrong", "1")) is None
    assert store.transact(lambda tx: tx.complete_external(b.id, "x.ct-a", "1")) is None
    done = store.transact(lambda tx: tx.complete_external(a.id, "x.ct-a", '"ok"'))
    assert done is not None and done.name == "a"
    assert store.transact(lambda tx: tx.complete_external(a.id, "x.ct-a", "2")) is None
    assert store.transact(lambda tx: tx.fail_external(b.id, "x.wrong", "e")) is None
    failed = store.transact(lambda tx: tx.fail_external(b.id, "x.ct-b", "refused"))
    assert failed is not None and failed.name == "b"
    history = store.read(lambda tx: tx.attempts_of_step(b.id))
    assert [(h["outcome"], h["error"]) for h in history] == [("failed", "refused")]
    assert steps(store, run_id)["a"]["output"] == '"ok"'


def test_release_held_gives_back_without_charging_an_attempt(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    claim(store, "w1", "t1", limit=1)
    claim(store, "w2", "t2", limit=1)
    assert store.transact(lambda tx: tx.release_held("w1")) == 1
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["attempts"], rows["a"]["lease_owner"]) == (
        "ready", 0, None)
    assert rows["b"]["status"] == "running"
    assert store.transact(lambda tx: tx.expire_owner("w1")) == 0
    assert store.transact(lambda tx: tx.expire_owner("w2")) == 1
    assert [e.owner for e in store.read(lambda tx: tx.expired(10))] == ["w2"]
