"""Contract: rate and concurrency limits (store/sql/limits.py), on both stores."""

from __future__ import annotations

import time

from waypost.store import Store
from waypost.store.records import LimitRow

from .helpers import TASK, claim, held_to_the_end, new_run, step, store

__all__ = ["store"]


def test_get_limits_returns_the_named_ones_that_exist(store: Store) -> None:
    limits = [LimitRow("b", None, None, None, 2), LimitRow("a", "1/s", 1, 1.0, None)]
    store.transact(lambda tx: tx.put_limits(limits))
    assert store.read(lambda tx: tx.get_limits(["b", "a", "zz"])) == sorted(
        limits, key=lambda x: x.name)
    assert store.read(lambda tx: tx.get_limits([])) == []
    store.transact(lambda tx: tx.put_limits([LimitRow("a", None, None, None, 9)]))
    assert store.read(lambda tx: tx.get_limits(["a"]))[0].concurrency == 9


def test_limits_are_locked_and_returned_in_name_order(store: Store) -> None:
    api, db = LimitRow("api", "2/0.6s", 2, 0.6, 5), LimitRow("db", None, None, None, 1)
    store.transact(lambda tx: tx.put_limits([db, api]))
    assert store.transact(lambda tx: tx.lock_limits(["db", "api", "other"])) == [api, db]
    assert store.transact(lambda tx: tx.lock_limits(["other"])) == []


def test_ready_among_tells_which_groups_have_a_claimable_step(store: Store) -> None:
    assert store.read(lambda tx: tx.ready_among([[TASK], ["other"]])) == [False, False]
    assert store.read(lambda tx: tx.ready_among([])) == []
    new_run(store, step("a"), step("b", task="other", status="pending", waiting_on=1),
            step("c", task="later"))
    (c,) = claim(store, tasks=("later",))
    store.transact(lambda tx: tx.retry_later(c.id, 3600.0, "x"))
    assert store.read(lambda tx: tx.ready_among([[TASK], ["other"], ["later"], ["later", TASK]])
                      ) == [True, False, False, True], "ready, and its time has come"


def test_a_grant_holds_a_slot_only_while_its_attempt_runs(store: Store) -> None:
    """Store verbs alone (test_store.py shows the same through the sweeper): the slot is
    freed by the outcome, the grant stays in its rate window until it is pruned."""
    limit = LimitRow("api", "2/s", 2, 1.0, 5)
    store.transact(lambda tx: tx.put_limits([limit]))
    new_run(store, step("a"), step("b"))
    a, b = claim(store)
    store.transact(lambda tx: tx.add_grants([("api", a.id, a.lease_token),
                                             ("api", b.id, b.lease_token)]))
    store.transact(lambda tx: tx.add_grants([]))
    use = store.read(lambda tx: tx.limit_usage("api", 1.0, 2, True))
    assert (use.granted, use.running) == (2, 2) and use.nth is not None and use.now > 0
    assert store.read(lambda tx: tx.limit_usage("api", 1.0, 3, True)).nth is None
    use = store.read(lambda tx: tx.limit_usage("api", None, None, False))
    assert (use.granted, use.running, use.nth) == (0, 0, None), "neither rate nor slots asked"
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "1")) is not None
    assert store.transact(lambda tx: tx.prune_grants(0.0)) == 0, "in the window"
    assert store.read(lambda tx: tx.limits_in_use(0.0)) == [(limit, 2, 1)]
    assert store.read(lambda tx: tx.limits_in_use(0.0, ["api", "x"])) == [(limit, 2, 1)]
    assert store.read(lambda tx: tx.limits_in_use(0.0, [])) == []
    time.sleep(1.1)
    use = store.read(lambda tx: tx.limit_usage("api", 1.0, 2, True))
    assert (use.granted, use.running, use.nth) == (0, 1, None)
    assert store.transact(lambda tx: tx.prune_grants(0.0)) == 1, "b's grant holds its slot"
    assert store.read(lambda tx: tx.limits_in_use(0.0)) == [(limit, 0, 1)]


def test_lock_limits_holds_them_to_the_end_of_the_transaction(store: Store) -> None:
    store.transact(lambda tx: tx.put_limits([LimitRow("api", None, None, None, 1)]))
    held_to_the_end(store, lambda tx: tx.lock_limits(["api"]),
                    lambda tx: tx.get_limits(["api"]))


def test_lock_limits_of_no_names_locks_and_returns_nothing(store: Store) -> None:
    store.transact(lambda tx: tx.put_limits([LimitRow("api", None, None, None, 1)]))
    assert store.transact(lambda tx: tx.lock_limits([])) == []
