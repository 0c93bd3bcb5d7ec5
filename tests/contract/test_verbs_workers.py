"""Contract: workers and named leases (store/sql/workers.py), on both stores."""

from __future__ import annotations

import time

from waypost.store import Store
from waypost.store.records import WorkerRow

from .helpers import claim, held_to_the_end, new_run, statuses, step, steps, store

__all__ = ["store"]


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


def test_a_worker_registers_the_machine_definitions_its_code_has(store: Store) -> None:
    store.transact(lambda tx: tx.register_worker("w1", "h", 1, '["t"]', "i1", None, None, 30.0,
                                                 '{"m": "sha256:1"}'))
    store.transact(lambda tx: tx.register_worker("w2", "h", 2, '["t"]'))
    rows = {w.id: w for w in store.read(lambda tx: tx.workers())}
    assert (rows["w1"].definitions, rows["w2"].definitions) == ({"m": "sha256:1"}, {})


def test_expire_leases_ends_only_the_owners_named_leases_now(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c"))
    a, b = claim(store, "w1", "t1", limit=2)
    (c,) = claim(store, "w2", "t2")
    assert store.transact(lambda tx: tx.expire_leases("w1", [])) == 0
    assert store.transact(lambda tx: tx.expire_leases("w1", ["forged", c.lease_token])) == 0
    assert store.transact(lambda tx: tx.expire_leases("w2", [a.lease_token])) == 0
    assert store.read(lambda tx: tx.expired(10)) == []
    assert store.transact(lambda tx: tx.expire_leases("w1", [a.lease_token])) == 1
    assert [(e.step_id, e.reason) for e in store.read(lambda tx: tx.expired(10))] == [
        (a.id, "lost")]
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "late")) is None
    assert store.transact(lambda tx: tx.succeed(b.id, b.lease_token, "1")) is not None
    assert store.transact(lambda tx: tx.expire_leases("w1", [b.lease_token])) == 0, \
        "fenced by running"
    assert statuses(store, run_id) == {
        "a": "running", "b": "succeeded", "c": "running"}


def test_expire_owner_ends_only_that_owners_running_leases(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c"))
    a, b = claim(store, "w1", "t1", limit=2)
    assert len(claim(store, "w2", "t2")) == 1
    assert store.transact(lambda tx: tx.succeed(b.id, b.lease_token, "1")) is not None
    assert store.transact(lambda tx: tx.expire_owner("w3")) == 0, "fenced by the owner"
    assert store.read(lambda tx: tx.expired(10)) == []
    assert store.transact(lambda tx: tx.expire_owner("w1")) == 1, "its running step only"
    assert [(e.step_id, e.owner, e.reason) for e in store.read(lambda tx: tx.expired(10))] == [
        (a.id, "w1", "lost")]
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "late")) is None
    assert statuses(store, run_id) == {"a": "running", "b": "succeeded", "c": "running"}
    assert steps(store, run_id)["c"]["lease_owner"] == "w2"


def test_one_owner_holds_a_named_lease_until_it_runs_out(store: Store) -> None:
    def take(owner: str, seconds: float, name: str = "sweeper") -> bool:
        return store.transact(lambda tx: tx.try_lease(name, owner, seconds))

    assert take("a", 0.5)
    assert not take("b", 30.0), "held by another"
    assert take("a", 0.5), "kept by its holder"
    assert take("b", 30.0, "other"), "another name is another lease"
    time.sleep(0.7)
    assert take("b", 30.0), "run out: taken over"
    assert not take("a", 30.0), "the old holder is the stale one now"


def test_workers_on_holds_their_rows_to_the_end_of_the_transaction(store: Store) -> None:
    store.transact(lambda tx: tx.register_worker("w1", "h1", 11, '["t1"]'))
    held_to_the_end(store, lambda tx: tx.workers_on("h1"), lambda tx: tx.workers())
