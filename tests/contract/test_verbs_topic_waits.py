"""Contract: waits for events (store/sql/topic_waits.py), on both stores."""

from __future__ import annotations

import threading
import time

from waypost.store import Store, open_store
from waypost.store.protocol import Tx

from .helpers import new_run, step, step_id, store

__all__ = ["store"]


def test_waits_are_found_by_topic_fields_and_digest(store: Store) -> None:
    run = new_run(store, step("w", status="pending"))
    sid = step_id(store, run, "w")
    machine = new_run(store)
    assert store.read(lambda tx: tx.wait_shapes("t.x")) == []
    store.transact(lambda tx: tx.add_topic_wait("t.x", "order", "d1", run, sid))
    store.transact(lambda tx: tx.add_topic_wait("t.x", "order", "d1", machine, None))
    store.transact(lambda tx: tx.add_topic_wait("t.x", "a,b", "d2", machine, None))
    assert sorted(store.read(lambda tx: tx.wait_shapes("t.x"))) == ["a,b", "order"]
    # a machine run waits once per topic: the second replaced the first
    assert store.read(lambda tx: tx.topic_waiters("t.x", "order", "d1")) == [(run, sid)]
    assert store.read(lambda tx: tx.topic_waiters("t.x", "a,b", "d2")) == [(machine, None)]
    assert store.read(lambda tx: tx.topic_waiters("t.y", "order", "d1")) == []
    # a step that waits anew replaces what it waited for
    store.transact(lambda tx: tx.add_topic_wait("t.x", "order", "d3", run, sid))
    assert store.read(lambda tx: tx.topic_waiters("t.x", "order", "d1")) == []
    store.transact(lambda tx: tx.drop_topic_waits([sid]))
    assert store.read(lambda tx: tx.topic_waiters("t.x", "order", "d3")) == []
    assert sorted(store.read(lambda tx: tx.wait_shapes("t.x"))) == ["a,b", "order"]


def test_events_since_a_run_began_are_read_in_order(store: Store) -> None:
    def emit(event_id: str, topic: str = "t.x") -> None:
        store.transact(lambda tx: tx.add_topic_event(event_id, topic, None, "{}", "c", None,
                                                     None))

    emit("before")
    time.sleep(0.02)
    run = new_run(store)
    for i in range(3):
        emit(f"e{i}")
    emit("elsewhere", "t.y")
    found = store.read(lambda tx: tx.topic_events_since_run("t.x", run, 0, 10))
    assert [e.id for e in found] == ["e0", "e1", "e2"]
    assert [e.id for e in store.read(lambda tx: tx.topic_events_since_run(
        "t.x", run, found[0].seq, 1))] == ["e1"]


def test_a_wait_starting_while_an_event_is_emitted_sees_it_or_is_seen(store: Store) -> None:
    """The topic lock: an emit that stored its event and looks for waits holds off a wait
    that would look for stored events, so the wait, once it looks, finds the event."""
    run = new_run(store)
    looked = threading.Event()

    def emit(tx: Tx) -> None:
        tx.add_topic_event("racing", "t.x", None, "{}", "c", None, None)
        assert tx.wait_shapes("t.x") == []
        looked.set()
        time.sleep(0.5)  # the wait starts now

    emitter = threading.Thread(target=lambda: store.transact(emit))
    emitter.start()
    looked.wait(5)
    other = open_store(store.url)

    def wait(tx: Tx) -> list[str]:
        tx.lock_topic("t.x")
        return [e.id for e in tx.topic_events_since_run("t.x", run, 0, 10)]

    try:
        seen = other.transact(wait)
    finally:
        emitter.join()
        other.close()
    assert seen == ["racing"]
