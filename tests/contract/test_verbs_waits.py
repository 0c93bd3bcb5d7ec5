"""Contract: waits, compensation, dead letters, retry budgets, limits and workers."""

from __future__ import annotations

import time

from waypost.store import Store
from waypost.store.records import LimitRow, WorkerRow

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
    assert store.transact(lambda tx: tx.set_run_status(run_id, "failed",
                                                       ["compensated"])) is True


def test_dead_letters_are_listed_locked_and_replayed_once(store: Store) -> None:
    run_id = new_run(store, step("a", input='{"x": 5}'))
    other = new_run(store, step("a"))
    a, o = claim(store, limit=2)
    for c in (a, o):
        assert store.transact(lambda tx, c=c: tx.end_attempt(c.id, c.lease_token, "failed",
                                                             "boom", False))
        store.transact(lambda tx, c=c: tx.fail(c.id, "boom"))
        store.transact(lambda tx, c=c: tx.add_dead_letter(c.id, "boom"))
    letters = store.read(lambda tx: tx.dead_letters(None, None, 10))
    assert [x["run_id"] for x in letters] == [other, run_id]
    mine = store.read(lambda tx: tx.dead_letters("dead", run_id, 10))
    assert len(mine) == 1 and (mine[0]["step"], mine[0]["input"], mine[0]["attempts"]) == (
        "a", '{"x": 5}', 1)
    letter = store.transact(lambda tx: tx.dead_letter(mine[0]["id"]))
    assert letter == mine[0]
    assert store.transact(lambda tx: tx.dead_letter(987654)) is None
    store.transact(lambda tx: tx.letters_replayed([a.id], '{"x": 6}'))
    store.transact(lambda tx: tx.letters_replayed([a.id], '{"x": 7}'))
    store.transact(lambda tx: tx.letters_replayed([], None))
    replayed = store.read(lambda tx: tx.dead_letters("replayed", None, 10))
    assert [(x["step_id"], x["replay_input"]) for x in replayed] == [(a.id, '{"x": 6}')]
    store.transact(lambda tx: tx.patch_input(a.id, '{"x": 6}', "c6"))
    row = steps(store, run_id)["a"]
    assert (row["input"], row["input_checksum"]) == ('{"x": 6}', "c6")
    assert letters[0]["input"] == '{"x": 1}', "a letter keeps the input it died with"


def test_a_retry_budget_is_spent_per_window(store: Store) -> None:
    assert [store.transact(lambda tx: tx.spend_retry("t", 2, 3600.0)) for _ in range(3)] == [
        True, True, False]
    assert store.transact(lambda tx: tx.spend_retry("t", 2, 0.0)) is True, "a new window"
    budgets = store.read(lambda tx: tx.retry_budgets(["t", "u"]))
    assert set(budgets) == {"t"}
    assert (budgets["t"]["used"], budgets["t"]["refused"], budgets["t"]["refused_total"]) == (
        1, 0, 1)
    assert store.read(lambda tx: tx.retry_budgets([])) == {}


def test_get_limits_returns_the_named_ones_that_exist(store: Store) -> None:
    limits = [LimitRow("b", None, None, None, 2), LimitRow("a", "1/s", 1, 1.0, None)]
    store.transact(lambda tx: tx.put_limits(limits))
    assert store.read(lambda tx: tx.get_limits(["b", "a", "zz"])) == sorted(
        limits, key=lambda x: x.name)
    assert store.read(lambda tx: tx.get_limits([])) == []
    store.transact(lambda tx: tx.put_limits([LimitRow("a", None, None, None, 9)]))
    assert store.read(lambda tx: tx.get_limits(["a"]))[0].concurrency == 9


def _ids(rows: list[WorkerRow]) -> list[tuple[str, int]]:
    return [(w.id, w.pid) for w in rows]


def test_workers_register_beat_and_are_forgotten(store: Store) -> None:
    assert store.transact(lambda tx: tx.register_worker("w1", "h1", 11, '["t1"]')) is None
    store.transact(lambda tx: tx.register_worker("w2", "h1", 12, '["t2"]', "i2", "boot",
                                                 "ns", 30.0))
    store.transact(lambda tx: tx.register_worker("w3", "h2", 13, '["t3"]'))
    store.transact(lambda tx: tx.try_lease("sweeper", "w1", 30.0))
    assert _ids(store.transact(lambda tx: tx.workers_on("h1"))) == [("w1", 11), ("w2", 12)]
    assert _ids(store.read(lambda tx: tx.workers())) == [("w1", 11), ("w2", 12), ("w3", 13)]
    named = store.read(lambda tx: tx.workers_named(["w2", "w3", "nope"]))
    assert sorted(named) == ["w2", "w3"]
    w2 = named["w2"]
    assert (w2.host, w2.incarnation, w2.boot_id, w2.pid_ns, w2.lease, w2.tasks) == (
        "h1", "i2", "boot", "ns", 30.0, ["t2"])
    assert w2.heartbeat_at >= w2.started_at > 0
    assert store.read(lambda tx: tx.workers_named([])) == {}
    assert store.read(lambda tx: tx.served_tasks(60.0)) == {"t1", "t2", "t3"}
    time.sleep(0.3)
    store.transact(lambda tx: tx.worker_alive("w2"))
    assert store.read(lambda tx: tx.served_tasks(0.2)) == {"t2"}
    store.transact(lambda tx: tx.forget_stale_workers(0.2))
    assert store.transact(lambda tx: tx.workers_on("h2")) == []
    assert _ids(store.read(lambda tx: tx.workers())) == [("w2", 12)]
    assert store.transact(lambda tx: tx.remove_worker("w2", "other")) is False
    assert store.transact(lambda tx: tx.remove_worker("w1")) is True
    assert _ids(store.transact(lambda tx: tx.workers_on("h1"))) == [("w2", 12)]
    assert store.transact(lambda tx: tx.try_lease("sweeper", "w2", 30.0)), \
        "a removed worker's named lease is free"
    assert store.transact(lambda tx: tx.remove_worker("w2", "i2")) is True
    assert store.read(lambda tx: tx.workers()) == []


def test_a_new_incarnation_expires_the_leases_of_the_one_it_replaces(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    assert store.transact(lambda tx: tx.register_worker("w1", "h", 1, "[]", "i1")) is None
    (a,) = claim(store, "w1", "t1", limit=1)
    assert store.transact(lambda tx: tx.register_worker("w1", "h", 1, "[]", "i1")) is None, \
        "its own earlier try (a lost commit acknowledgement) replaces nothing"
    assert store.read(lambda tx: tx.expired(10)) == []
    old = store.transact(lambda tx: tx.register_worker("w1", "h", 2, "[]", "i2"))
    assert old is not None and (old.incarnation, old.pid) == ("i1", 1)
    assert [(e.step_id, e.owner) for e in store.read(lambda tx: tx.expired(10))] == [
        (a.id, "w1")]
    assert store.transact(lambda tx: tx.renew("w1", [a.lease_token], 30.0)) == set()
    assert store.transact(lambda tx: tx.remove_worker("w1", "i1")) is False, "replaced"
    assert _ids(store.read(lambda tx: tx.workers())) == [("w1", 2)]
    assert steps(store, run_id)["b"]["status"] == "ready"
