"""Contract: claims, leases and outcomes (store/sql/claims.py). Every outcome is fenced by
the attempt's lease token, a live lease and the step still running: a wrong token, a
lease that ran out or a second report matches nothing."""

from __future__ import annotations

import time

from waypost.store import Store

from .helpers import TASK, claim, new_run, step, step_id, steps, store, while_open

__all__ = ["store"]


def test_claim_takes_ready_due_steps_of_the_tasks_served_oldest_first(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c", task="other"),
                     step("d", status="pending", waiting_on=1))
    b = step_id(store, run_id, "b")
    assert claim(store, "w0", "t0", limit=1)[0].name == "a", "oldest first"
    a = step_id(store, run_id, "a")
    store.transact(lambda tx: tx.retry_later(a, 3600.0, "later"))
    got = claim(store, "w1", "t1", limit=5)
    assert [c.name for c in got] == ["b"]
    assert (got[0].attempts, got[0].task, got[0].completion_token) == (1, TASK, None)
    assert got[0].lease_token.startswith("t1.") and len(got[0].lease_token) > len("t1.") + 16
    assert got[0].id == b
    assert claim(store, "w2", "t2") == [], "a step is claimed once"
    assert store.transact(lambda tx: tx.claim("w", "t", 0, 30.0, [TASK])) == []
    assert store.read(lambda tx: tx.claimed_with("w1", "t1")) == got
    assert store.read(lambda tx: tx.claimed_with("w1", "other")) == []
    due = store.read(lambda tx: tx.next_ready_at([TASK]))
    assert due is not None and due > store.read(lambda tx: tx.now()) + 3000
    assert store.read(lambda tx: tx.next_ready_at(["nothing"])) is None
    row = steps(store, run_id)["b"]
    assert (row["status"], row["lease_owner"]) == ("running", "w1")
    assert steps(store, run_id)["a"]["status"] == "ready", "retried later, not claimable"


def test_each_claimed_step_gets_its_own_lease_token_and_external_ones_a_completion_token(
        store: Store) -> None:
    new_run(store, step("a"), step("b"), step("c", task="ext"))
    got = store.transact(lambda tx: tx.claim("w1", "t1", 10, 30.0, [TASK, "ext"], ["ext"]))
    by = {c.name: c for c in got}
    assert len({c.lease_token for c in got}) == 3 and all(
        c.lease_token.startswith("t1.") for c in got)
    assert by["a"].completion_token is None and by["b"].completion_token is None
    ct = by["c"].completion_token
    assert ct is not None and ct != by["c"].lease_token and str(by["c"].id) in ct
    assert sorted(store.read(lambda tx: tx.claimed_with("w1", "t1")), key=lambda c: c.id) == \
        sorted(got, key=lambda c: c.id)
    assert store.read(lambda tx: tx.claimed_with("w2", "t1")) == [], "fenced by the owner"
    assert store.read(lambda tx: tx.claimed_with("w1", "t")) == [], "by the whole batch"


def test_succeed_is_fenced_by_token_live_lease_and_status(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store, lease=30.0)
    assert store.transact(lambda tx: tx.succeed(a.id, "forged", "1")) is None
    assert store.transact(lambda tx: tx.succeed(a.id, "t1", "1")) is None, "the batch alone"
    assert store.transact(lambda tx: tx.succeed(a.id, b.lease_token, "1")) is None
    held = store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "1"))
    assert held is not None and (held.id, held.run_id, held.name) == (a.id, run_id, "a")
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "again")) is None
    got = store.transact(lambda tx: tx.succeed_many([
        (b.id, b.lease_token, "2"), (a.id, a.lease_token, "3"), (b.id, b.lease_token, "4")]))
    assert [None if h is None else h.name for h in got] == ["b", None, None]
    rows = steps(store, run_id)
    assert (rows["a"]["output"], rows["b"]["output"]) == ("1", "2")
    assert rows["a"]["lease_owner"] is None and rows["a"]["status"] == "succeeded"
    assert store.transact(lambda tx: tx.succeed_many([(b.id, b.lease_token, "5")])) == [None]
    assert store.transact(lambda tx: tx.succeed_many([])) == []
    assert steps(store, run_id)["b"]["output"] == "2", "a batch retried records nothing"


def test_an_expired_lease_or_a_passed_timeout_refuses_the_outcome(store: Store) -> None:
    new_run(store, step("a"), step("b", timeout=0.1))
    a, b = claim(store, lease=0.2)
    tokens = [a.lease_token, b.lease_token]
    assert store.transact(lambda tx: tx.renew("w1", tokens, 0.2)) == {
        (a.id, a.lease_token), (b.id, b.lease_token)}
    time.sleep(0.35)
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "1")) is None
    assert store.transact(lambda tx: tx.succeed(b.id, b.lease_token, "1")) is None
    assert store.transact(lambda tx: tx.renew("w1", tokens, 30.0)) == set(), "never revived"
    expired = {e.step_id: e for e in store.read(lambda tx: tx.expired(10))}
    assert set(expired) == {a.id, b.id}
    assert expired[b.id].reason == "timeout" and expired[a.id].reason == "lost"
    assert expired[a.id].lease_token == a.lease_token and expired[a.id].owner == "w1"
    assert store.read(lambda tx: tx.expired(1)) and len(store.read(
        lambda tx: tx.expired(1))) == 1


def test_renew_and_beat_need_the_live_lease(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store, lease=30.0)
    before = steps(store, run_id)["a"]["lease_expires_at"]
    assert store.transact(lambda tx: tx.renew("w1", [a.lease_token, "forged"], 60.0)) == {
        (a.id, a.lease_token)}
    rows = steps(store, run_id)
    assert rows["a"]["lease_expires_at"] > before + 20, "renewed by its token"
    assert rows["b"]["lease_expires_at"] < before + 1, "another token's lease is not"
    assert store.transact(lambda tx: tx.renew("w2", [a.lease_token, b.lease_token],
                                              30.0)) == set(), "fenced by the owner"
    assert store.transact(lambda tx: tx.renew("w1", [], 30.0)) == set()
    store.transact(lambda tx: tx.beat(a.id, a.lease_token, '{"p": 1}'))
    store.transact(lambda tx: tx.beat(b.id, "forged", '{"p": 2}'))
    store.transact(lambda tx: tx.beat(b.id, a.lease_token, '{"p": 3}'))
    rows = steps(store, run_id)
    assert rows["a"]["heartbeat_details"] == '{"p": 1}'
    assert rows["b"]["heartbeat_details"] is None
    store.transact(lambda tx: tx.expire_owner("w1"))
    store.transact(lambda tx: tx.beat(a.id, a.lease_token, '{"p": 4}'))
    assert steps(store, run_id)["a"]["heartbeat_details"] == '{"p": 1}', "a live lease"


def test_end_attempt_records_history_for_the_live_or_the_expired_holder(
        store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store, lease=30.0)
    ta, tb = a.lease_token, b.lease_token
    assert store.transact(lambda tx: tx.end_attempt(a.id, ta, "failed", "e", True)) is None
    assert store.transact(lambda tx: tx.end_attempt(a.id, "t9", "failed", "e", False)) is None
    assert store.transact(lambda tx: tx.end_attempt(a.id, tb, "failed", "e", False)) is None
    held = store.transact(lambda tx: tx.end_attempt(a.id, ta, "failed", "boom", False))
    assert held is not None and held.attempts == 1 and held.max_attempts == 3
    assert steps(store, run_id)["a"]["status"] == "running", "the caller decides what next"
    store.transact(lambda tx: tx.retry_later(a.id, 0.0, "boom", extra_attempt=True))
    store.transact(lambda tx: tx.expire_owner("w1"))
    assert store.transact(lambda tx: tx.end_attempt(b.id, tb, "lost", "gone", False)) is None
    assert store.transact(lambda tx: tx.end_attempt(b.id, tb, "lost", "gone", True))
    store.transact(lambda tx: tx.fail(b.id, "gone"))
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["max_attempts"], rows["a"]["lease_owner"]) == (
        "ready", 4, None)
    assert (rows["b"]["status"], rows["b"]["error"]) == ("failed", "gone")
    assert [h["outcome"] for h in store.read(lambda tx: tx.attempts_of(run_id))] == [
        "failed", "lost"]


def test_lost_attempts_counts_only_losses_while_claimed_alone(store: Store) -> None:
    """A loss beside other attempts is not charged: it quarantines the step, which is then
    claimed only alone, and only a loss while alone counts (store/sql/claims.py)."""
    run_id = new_run(store, step("a"), step("b"))
    a, b = claim(store)
    assert store.transact(lambda tx: tx.lost_attempts(a.id)) == 0, "lost beside b"
    store.transact(lambda tx: tx.retry_later(a.id, 0.0, "lost", extra_attempt=True))
    assert claim(store, "w2", "t2") == [], "in quarantine: only a worker holding nothing"
    (solo,) = store.transact(lambda tx: tx.claim("w2", "t3", 10, 30.0, [TASK], (), True))
    assert (solo.id, solo.solo) == (a.id, True)
    assert store.transact(lambda tx: tx.lost_attempts(a.id)) == 1, "lost alone: charged"
    store.transact(lambda tx: tx.retry_later(a.id, 0.0, "lost", extra_attempt=True))
    assert store.transact(lambda tx: tx.lost_attempts(b.id)) == 0
    assert steps(store, run_id)["b"]["status"] == "running"


def test_retry_later_waits_its_delay(store: Store) -> None:
    run_id = new_run(store, step("a"))
    (a,) = claim(store)
    store.transact(lambda tx: tx.end_attempt(a.id, a.lease_token, "failed", "e", False))
    store.transact(lambda tx: tx.retry_later(a.id, 3600.0, "e"))
    assert claim(store, "w2", "t2") == []
    row = steps(store, run_id)["a"]
    assert (row["status"], row["max_attempts"], row["lease_owner"]) == ("ready", 3, None)


def test_retry_later_fail_and_escalate_change_only_a_running_step(store: Store) -> None:
    run_id = new_run(store, step("r"), step("f"), step("e"),
                     step("p", status="pending", waiting_on=1))
    ids = {n: r["id"] for n, r in steps(store, run_id).items()}
    store.transact(lambda tx: tx.retry_later(ids["r"], 3600.0, "late", extra_attempt=True))
    store.transact(lambda tx: tx.fail(ids["f"], "dead"))
    store.transact(lambda tx: tx.escalate(ids["e"], "help", None))
    for verb in ("retry_later", "fail", "escalate"):
        if verb == "retry_later":
            store.transact(lambda tx: tx.retry_later(ids["p"], 0.0, "x", True))
        elif verb == "fail":
            store.transact(lambda tx: tx.fail(ids["p"], "x"))
        else:
            store.transact(lambda tx: tx.escalate(ids["p"], "x", 0.0))
    rows = steps(store, run_id)
    assert {n: (r["status"], r["error"], r["max_attempts"]) for n, r in rows.items()} == {
        "r": ("ready", None, 3), "f": ("ready", None, 3), "e": ("ready", None, 3),
        "p": ("pending", None, 3)}
    assert [c.name for c in claim(store)] == ["r", "f", "e"], "ready now, as before"


def test_expire_queued_fails_only_steps_still_ready(store: Store) -> None:
    run_id = new_run(store, step("a", queue_timeout=0.0), step("b", queue_timeout=0.0),
                     step("c", queue_timeout=3600.0))
    store.transact(lambda tx: tx.claim("w", "t", 1, 30.0, [TASK]))
    held = store.transact(lambda tx: tx.expire_queued("no worker", 10))
    assert [h.name for h in held] == ["b"]
    rows = steps(store, run_id)
    assert {n: r["status"] for n, r in rows.items()} == {
        "a": "running", "b": "failed", "c": "ready"}
    assert store.transact(lambda tx: tx.expire_queued("again", 10)) == [], "failed once"
    assert steps(store, run_id)["b"]["error"] == "no worker"


def test_hand_off_then_external_completion_with_the_token_once(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c"))
    a, b, c = store.transact(lambda tx: tx.claim("w1", "t1", 10, 30.0, [TASK], [TASK]))
    ca, cb, cc = (x.completion_token or "" for x in (a, b, c))
    assert ca and cb and len({ca, cb, cc}) == 3
    assert store.transact(lambda tx: tx.hand_off(a.id, "forged", ca)) is False
    assert store.transact(lambda tx: tx.hand_off(a.id, a.lease_token, cb)) is False
    assert store.transact(lambda tx: tx.hand_off(a.id, a.lease_token, ca)) is True
    assert store.transact(lambda tx: tx.hand_off(b.id, b.lease_token, cb)) is True
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["lease_owner"]) == ("running", None)
    assert store.transact(lambda tx: tx.renew("w1", [a.lease_token, b.lease_token],
                                              30.0)) == set(), "no lease to renew"
    assert store.transact(lambda tx: tx.complete_external(a.id, "wp1.wrong", "1")) is None
    assert store.transact(lambda tx: tx.complete_external(a.id, a.lease_token, "1")) is None
    assert store.transact(lambda tx: tx.complete_external(b.id, ca, "1")) is None
    done = store.transact(lambda tx: tx.complete_external(a.id, ca, '"ok"'))
    assert done is not None and done.name == "a"
    assert store.transact(lambda tx: tx.complete_external(a.id, ca, "2")) is None
    assert store.transact(lambda tx: tx.fail_external(b.id, "wp1.wrong", "e")) is None
    assert store.transact(lambda tx: tx.fail_external(b.id, ca, "e")) is None
    failed = store.transact(lambda tx: tx.fail_external(b.id, cb, "refused"))
    assert failed is not None and failed.name == "b"
    history = store.read(lambda tx: tx.attempts_of_step(b.id))
    assert [(h["outcome"], h["error"]) for h in history] == [("failed", "refused")]
    assert steps(store, run_id)["a"]["output"] == '"ok"'
    # Before the hand-off is recorded the completion token already works (the other
    # system may answer first), and only for the step it was drawn for.
    assert store.transact(lambda tx: tx.complete_external(c.id, cb, "3")) is None
    early = store.transact(lambda tx: tx.complete_external(c.id, cc, '"early"'))
    assert early is not None and early.name == "c"


def test_a_step_of_a_task_that_does_not_complete_externally_cannot_be(store: Store) -> None:
    run_id = new_run(store, step("a"))
    (a,) = claim(store)
    assert a.completion_token is None
    for token in (a.lease_token, "", f"wp1.{a.id}.0"):
        assert store.transact(lambda tx, t=token: tx.complete_external(a.id, t, "1")) is None
        assert store.transact(lambda tx, t=token: tx.fail_external(a.id, t, "e")) is None
        assert store.transact(lambda tx, t=token: tx.hand_off(a.id, a.lease_token, t)) \
            is False
    assert steps(store, run_id)["a"]["status"] == "running"


def test_release_held_gives_back_without_charging_an_attempt(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"))
    (a,) = claim(store, "w1", "t1", limit=1)
    (b,) = claim(store, "w2", "t2", limit=1)
    tokens = [a.lease_token, b.lease_token]
    assert store.transact(lambda tx: tx.release_held("w1", ["forged"], "stop")) == 0
    assert store.transact(lambda tx: tx.release_held("w2", [a.lease_token], "stop")) == 0
    assert store.transact(lambda tx: tx.release_held("w1", tokens, "stopping")) == 1
    assert store.transact(lambda tx: tx.release_held("w1", tokens, "again")) == 0
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["attempts"], rows["a"]["max_attempts"],
            rows["a"]["lease_owner"]) == ("ready", 1, 4, None)
    assert rows["b"]["status"] == "running"
    history = store.read(lambda tx: tx.attempts_of_step(a.id))
    assert [(h["attempt"], h["outcome"], h["worker"]) for h in history] == [
        (1, "released", "w1")]
    assert "stopping" in history[0]["error"]
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "late")) is None
    (again,) = claim(store, "w3", "t3")
    assert (again.id, again.attempts) == (a.id, 2)
    assert store.transact(lambda tx: tx.expire_owner("w1")) == 0, "w1 holds nothing now"
    assert store.transact(lambda tx: tx.expire_owner("w2")) == 1
    assert store.transact(lambda tx: tx.expire_owner("w3")) == 1
    assert sorted(e.owner or "" for e in store.read(lambda tx: tx.expired(10))) == [
        "w2", "w3"]


def test_concurrent_claims_never_take_one_step_and_never_wait(store: Store) -> None:
    """PostgreSQL: while one claim's transaction is open, another claims the remaining
    ready steps at once (skip locked). SQLite: the second claim runs after the first
    commits, and takes what the first did not."""
    new_run(store, step("a"), step("b"), step("c"))
    first, second = while_open(store, lambda tx: tx.claim("w1", "b1", 1, 30.0, (TASK,)),
                               lambda tx: tx.claim("w2", "b2", 10, 30.0, (TASK,)))
    assert [s.name for s in first] == ["a"]
    assert sorted(s.name for s in second) == ["b", "c"]
