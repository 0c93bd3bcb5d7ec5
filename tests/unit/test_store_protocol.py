"""The store's documented protocol and its SQL implementation list the same verbs, each
documented, so neither can gain a verb the other lacks."""

from __future__ import annotations

import inspect

from waypost.store.protocol import Tx
from waypost.store.sql import SqlTx

#: SQL plumbing under the verbs: migrations and tests use it, the runtime never does.
PLUMBING = {"sql", "execute", "executemany"}


def public(cls: type) -> set[str]:
    return {name for name, value in inspect.getmembers(cls)
            if not name.startswith("_") and callable(value) and not name.isupper()}


def protocol_verbs() -> set[str]:
    return {name for name in vars(Tx) if not name.startswith("_") and callable(vars(Tx)[name])}


def test_protocol_and_sqltx_have_the_same_verbs() -> None:
    assert protocol_verbs() == public(SqlTx) - PLUMBING


def test_every_verb_is_documented_with_its_atomicity() -> None:
    for name in protocol_verbs():
        doc = inspect.getdoc(getattr(Tx, name)) or ""
        assert doc, f"Tx.{name} has no docstring"


def test_signatures_agree() -> None:
    for name in protocol_verbs():
        ours = inspect.signature(getattr(Tx, name))
        theirs = inspect.signature(getattr(SqlTx, name))
        assert list(ours.parameters) == list(theirs.parameters), name
