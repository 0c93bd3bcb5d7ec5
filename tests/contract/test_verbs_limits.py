"""Contract: rate and concurrency limits (store/sql/limits.py), on both stores."""

from __future__ import annotations

from waypost.store import Store
from waypost.store.records import LimitRow

from .helpers import store

__all__ = ["store"]


def test_get_limits_returns_the_named_ones_that_exist(store: Store) -> None:
    limits = [LimitRow("b", None, None, None, 2), LimitRow("a", "1/s", 1, 1.0, None)]
    store.transact(lambda tx: tx.put_limits(limits))
    assert store.read(lambda tx: tx.get_limits(["b", "a", "zz"])) == sorted(
        limits, key=lambda x: x.name)
    assert store.read(lambda tx: tx.get_limits([])) == []
    store.transact(lambda tx: tx.put_limits([LimitRow("a", None, None, None, 9)]))
    assert store.read(lambda tx: tx.get_limits(["a"]))[0].concurrency == 9
