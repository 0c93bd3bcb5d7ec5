"""Contract: event chains (store/sql/topics.py), on both stores."""

from __future__ import annotations

import threading
import time

from waypost.store import Store, open_store
from waypost.store.protocol import Tx
from waypost.store.records import SubscriptionRow

from .helpers import new_run, store, while_open

__all__ = ["store"]


def _event(store: Store, event_id: str, topic: str = "a.b", key: str | None = None,
           correlation: str = "c1", cause: str | None = None) -> int:
    stored = store.transact(lambda tx: tx.add_topic_event(
        event_id, topic, key, '{"n": 1}', correlation, cause, "s" if cause else None))
    assert stored is not None
    return stored[0]


def _define(store: Store) -> None:
    store.transact(lambda tx: tx.put_definition("hfp", "h", "handler", "{}"))


def test_events_are_stored_once_per_id_and_read_in_order(store: Store) -> None:
    first = _event(store, "e1")
    assert store.transact(lambda tx: tx.add_topic_event(
        "e1", "x.y", None, "null", "c9", None, None)) is None  # a repeat stores nothing
    second = _event(store, "e2", "a.c", key="k", correlation="c2", cause="run-1")
    assert second > first
    one = store.read(lambda tx: tx.topic_event("e1"))
    assert one is not None and (one.seq, one.topic, one.payload, one.correlation_id) == (
        first, "a.b", '{"n": 1}', "c1")
    two = store.read(lambda tx: tx.topic_event(seq=second))
    assert two is not None and (two.id, two.key, two.cause_run, two.cause_step) == (
        "e2", "k", "run-1", "s")
    assert store.read(lambda tx: tx.topic_event("nope")) is None
    assert [e.id for e in store.read(lambda tx: tx.topic_events_after(0, 10))] == ["e1", "e2"]
    assert [e.id for e in store.read(lambda tx: tx.topic_events_after(first, 10))] == ["e2"]
    assert len(store.read(lambda tx: tx.topic_events_after(0, 1))) == 1
    assert [e.id for e in store.read(lambda tx: tx.correlated_events("c2", 10))] == ["e2"]


def test_a_subscription_takes_only_newer_events_and_keeps_its_place(store: Store) -> None:
    _define(store)
    store.transact(lambda tx: tx.put_definition("hfp2", "h", "handler", "{}"))
    before = _event(store, "old")
    assert store.read(lambda tx: tx.subscriptions(gate=False)) == []
    assert store.transact(lambda tx: tx.put_subscription("h", "a.*", "hfp")) is True
    [sub] = store.read(lambda tx: tx.subscriptions(gate=False))
    assert (sub.name, sub.pattern, sub.fingerprint, sub.since_seq, sub.replay_seq) == (
        "h", "a.*", "hfp", before, None)
    _event(store, "new")
    # the same code again changes nothing; new code keeps the position
    assert store.transact(lambda tx: tx.put_subscription("h", "a.*", "hfp")) is False
    assert store.transact(lambda tx: tx.put_subscription("h", "a.**", "hfp2")) is True
    [sub] = store.read(lambda tx: tx.subscriptions(gate=False))
    assert (sub.pattern, sub.fingerprint, sub.since_seq) == ("a.**", "hfp2", before)


def test_a_subscription_added_while_an_event_is_being_stored_waits_for_it(
        store: Store) -> None:
    """The gate: an emit reads subscriptions under a shared lock, so a subscription added
    meanwhile either sees the event as older than itself or is seen by the emit."""
    _define(store)
    read = threading.Event()
    added: list[bool] = []

    def emit(tx: Tx) -> None:
        assert tx.subscriptions() == []
        read.set()
        time.sleep(0.5)  # the subscription is being added now
        tx.add_topic_event("racing", "a.b", None, "null", "c", None, None)

    emitter = threading.Thread(target=lambda: store.transact(emit))
    emitter.start()
    read.wait(5)
    other = open_store(store.url)
    try:
        added.append(other.transact(lambda tx: tx.put_subscription("h", "a.*", "hfp")))
    finally:
        emitter.join()
        other.close()
    assert added == [True]
    racing = store.read(lambda tx: tx.topic_event("racing"))
    [sub] = store.read(lambda tx: tx.subscriptions(gate=False))
    assert racing is not None and sub.since_seq >= racing.seq


def test_a_replay_walks_events_from_a_time_then_goes_live(store: Store) -> None:
    _define(store)
    store.transact(lambda tx: tx.put_subscription("h", "a.*", "hfp"))
    first = _event(store, "e1")
    assert store.transact(lambda tx: tx.replay_subscription("nobody", 0.0)) is None
    assert store.transact(lambda tx: tx.replay_subscription("h", 0.0)) == 1
    [sub] = store.read(lambda tx: tx.subscriptions(gate=False))
    assert sub.replay_seq == first - 1
    # from a time after every event: nothing to replay
    assert store.transact(lambda tx: tx.replay_subscription("h", time.time() + 3600)) == 0

    def advance(tx: Tx) -> None:
        tx.close_topic_gate()
        tx.advance_replay("h", first, False)

    store.transact(advance)
    assert store.read(lambda tx: tx.subscriptions(gate=False))[0].replay_seq == first
    store.transact(lambda tx: tx.advance_replay("h", first, True))
    assert store.read(lambda tx: tx.subscriptions(gate=False))[0].replay_seq is None
    store.transact(lambda tx: tx.advance_replay("h", 99, False))  # fenced: not replaying
    assert store.read(lambda tx: tx.subscriptions(gate=False))[0].replay_seq is None


def test_runs_carry_their_correlation_and_trigger(store: Store) -> None:
    root = new_run(store)
    assert store.read(lambda tx: tx.run_correlation(root)) == root
    assert store.read(lambda tx: tx.run_correlation("nope")) is None
    seq = _event(store, "e1", correlation="corr")

    def delivery(tx: Tx) -> None:
        assert tx.insert_run("d1", "h", "fp", None, "{}", "c", 1, "corr", seq, None)
        tx.link_child("child", "d1", "s")

    store.transact(lambda tx: tx.insert_run("child", "f", "fp", None, "{}", "c", 1))
    store.transact(delivery)
    assert store.read(lambda tx: tx.run_correlation("d1")) == "corr"
    assert store.read(lambda tx: tx.run_correlation("child")) == "corr"  # inherited
    runs = store.read(lambda tx: tx.correlated_runs("corr", 10))
    assert [(r["id"], r["trigger_event"], r["parent_run"]) for r in runs] == [
        ("child", None, "d1"), ("d1", seq, None)]
    assert [r["id"] for r in store.read(lambda tx: tx.correlated_runs(root, 10))] == [root]


def test_a_lane_runs_one_delivery_at_a_time_in_order(store: Store) -> None:
    store.transact(lambda tx: tx.put_definition("fp", "h", "handler", "{}"))
    seqs = [_event(store, f"e{i}", key="k") for i in range(3)]
    assert store.transact(lambda tx: tx.enter_lane("h", "k")) == (1, 1)
    assert store.transact(lambda tx: tx.insert_run("r0", "h", "fp", None, "{}", "c", 1, "c",
                                                   seqs[0], "k"))
    assert store.read(lambda tx: tx.run_head("r0"))[3] == "k"
    for n in (1, 2):
        position, open_ = store.transact(lambda tx: tx.enter_lane("h", "k"))
        assert (position, open_) == (n + 1, n + 1)
        store.transact(lambda tx, n=n, p=position: tx.queue_in_lane("h", "k", p, seqs[n],
                                                                   f"r{n}"))
    assert store.transact(lambda tx: tx.enter_lane("h", "other")) == (1, 1)  # its own lane
    queued = store.read(lambda tx: tx.queued_deliveries(seqs))
    assert [q["run_id"] for q in queued] == ["r1", "r2"]
    assert store.read(lambda tx: tx.queued_deliveries([])) == []
    assert store.read(lambda tx: tx.known_deliveries(["r0", "r1", "zz"])) == {"r0", "r1"}
    assert store.read(lambda tx: tx.known_deliveries([])) == set()
    # r0 ends: r1 is next; a second end of r0 (a replayed dead letter) takes nothing
    assert store.transact(lambda tx: tx.leave_lane("r0")) == ("h", seqs[1], "r1")
    assert store.transact(lambda tx: tx.leave_lane("r0")) is None
    assert [q["run_id"] for q in store.read(lambda tx: tx.queued_deliveries(seqs))] == ["r2"]


def test_two_deliveries_of_one_key_join_their_lane_one_at_a_time(store: Store) -> None:
    """The lane's row lock: a second delivery of the same key waits for the first's commit
    (PostgreSQL; on SQLite every writer does), then takes the position after it."""
    assert store.transact(lambda tx: tx.enter_lane("h", "k")) == (1, 1)
    assert while_open(store, lambda tx: tx.enter_lane("h", "k"),
                      lambda tx: tx.enter_lane("h", "k"), "delivery_lanes") == ((2, 2), (3, 3))


def test_a_closed_topic_gate_holds_an_emit_until_its_transaction_ends(store: Store) -> None:
    """An emit stores its event, then reads the subscriptions under the gate's shared lock:
    while another transaction holds the gate exclusively, the emit cannot commit
    (PostgreSQL: it waits on the gate; SQLite: every writer waits), and once the gate's
    transaction commits, the emit carries on."""
    def emit(tx: Tx) -> list[SubscriptionRow]:
        assert tx.add_topic_event("held", "a.b", None, "null", "c", None, None)
        return tx.subscriptions()

    def gate(tx: Tx) -> int:
        tx.close_topic_gate()
        return len(tx.topic_events_after(0, 10))

    assert while_open(store, gate, emit, "topic_gate") == (0, [])
    assert store.read(lambda tx: tx.topic_event("held")) is not None


def test_an_emit_that_waited_on_the_gate_sees_the_subscription_that_closed_it(
        store: Store) -> None:
    """The gate's promise to a subscription added while an event is being stored: the
    emit stored its event before the subscription closed the gate, and reads the
    subscriptions after, so the event is older than the subscription or seen by it."""
    _define(store)

    def emit(tx: Tx) -> list[str]:
        assert tx.add_topic_event("racing", "a.b", None, "null", "c", None, None)
        return [s.name for s in tx.subscriptions()]

    added, seen = while_open(store, lambda tx: tx.put_subscription("h", "a.*", "hfp"), emit,
                             "topic_gate")
    racing = store.read(lambda tx: tx.topic_event("racing"))
    [sub] = store.read(lambda tx: tx.subscriptions(gate=False))
    assert added and racing is not None
    assert seen == ["h"] or sub.since_seq >= racing.seq, "the event reaches nobody"
