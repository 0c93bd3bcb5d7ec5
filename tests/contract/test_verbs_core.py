"""Contract: the database itself, definitions and requests (store/sql/core.py), on both stores."""

from __future__ import annotations

import time

import pytest

from waypost.errors import DatabaseRefused
from waypost.store import Store, open_store
from waypost.store.protocol import Tx

from .helpers import store

__all__ = ["store"]


def test_now_is_the_database_clock_and_notify_is_delivered_on_commit(
        db_url: str, store: Store) -> None:
    a, b = store.read(lambda tx: tx.now()), store.read(lambda tx: tx.now())
    assert 0 < a <= b
    listener = open_store(db_url)
    try:
        listener.wait_for_wakeup(0.01)  # subscribes (PostgreSQL)
        store.transact(lambda tx: tx.notify())
        woke = listener.wait_for_wakeup(2.0)
        assert woke is (store.dialect == "postgres")  # SQLite's workers poll
    finally:
        listener.close()


def test_a_definition_is_stored_once_under_its_fingerprint(store: Store) -> None:
    store.transact(lambda tx: tx.put_definition("f1", "flow", "dag", '{"v": 1}'))
    store.transact(lambda tx: tx.put_definition("f1", "flow", "dag", '{"v": 2}'))
    store.transact(lambda tx: tx.put_definition("f2", "flow", "saga", '{"v": 3}'))
    assert store.read(lambda tx: tx.definition("f1")) == ("dag", '{"v": 1}')
    assert store.read(lambda tx: tx.definition("f2")) == ("saga", '{"v": 3}')
    assert store.read(lambda tx: tx.definition("nope")) is None


def test_a_request_records_its_result_once_and_is_pruned_when_old(store: Store) -> None:
    assert store.read(lambda tx: tx.request_result("r1")) is None
    store.transact(lambda tx: tx.record_request("r1", '{"ok": 1}'))
    assert store.read(lambda tx: tx.request_result("r1")) == '{"ok": 1}'
    assert store.read(lambda tx: tx.request_result("r2")) is None
    with pytest.raises(DatabaseRefused):
        store.transact(lambda tx: tx.record_request("r1", '{"ok": 2}'))
    assert store.read(lambda tx: tx.request_result("r1")) == '{"ok": 1}', "the first kept"

    def retried(tx: Tx) -> str | None:  # a retry after a lost acknowledgement asks first
        tx.record_request("r2", '"two"')
        return tx.request_result("r2")

    assert store.transact(retried) == '"two"'
    time.sleep(1.0)  # well apart, even on a loaded machine
    store.transact(lambda tx: tx.record_request("r3", '"new"'))
    assert store.transact(lambda tx: tx.prune_requests(3600.0)) == 0
    assert store.transact(lambda tx: tx.prune_requests(0.5)) == 2
    assert [store.read(lambda tx, r=r: tx.request_result(r)) for r in ("r1", "r2", "r3")] == [
        None, None, '"new"']
