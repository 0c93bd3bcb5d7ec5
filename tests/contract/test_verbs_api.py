"""Contract: the HTTP API's tokens (store/sql/api.py), on both stores."""

from __future__ import annotations

from waypost.store import Store

from .helpers import store

__all__ = ["store"]


def test_api_tokens_are_kept_by_digest_under_a_name(store: Store) -> None:
    assert store.read(lambda tx: tx.api_tokens()) == {}
    assert store.transact(lambda tx: tx.add_api_token("admin", "d1"))
    assert not store.transact(lambda tx: tx.add_api_token("admin", "d2"))
    assert store.read(lambda tx: tx.api_tokens()) == {"d1": "admin"}
