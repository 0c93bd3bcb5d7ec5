"""The store's documented protocol and its SQL implementation list the same verbs, each
documented, so neither can gain a verb the other lacks; and concern by concern, so a verb
is documented in the protocol module named like the SQL module that implements it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from waypost.store.protocol import CONCERNS, Tx
from waypost.store.sql import SqlTx
from waypost.store.sql.core import SqlCore

#: SQL plumbing under the verbs: migrations and tests use it, the runtime never does.
PLUMBING = {"sql", "execute", "executemany"}


def public(cls: type) -> set[str]:
    return {name for name, value in inspect.getmembers(cls)
            if not name.startswith("_") and callable(value) and not name.isupper()}


def own_verbs(cls: type) -> set[str]:
    """The verbs `cls` itself defines, not those it inherits."""
    return {name for name, value in vars(cls).items()
            if not name.startswith("_") and callable(value) and not name.isupper()} - PLUMBING


def protocol_verbs() -> set[str]:
    return {name for concern in CONCERNS.values() for name in own_verbs(concern)}


def sql_mixin(concern: str) -> type:
    """The SQL class of a concern: the one mixin its store/sql/ module defines (`SqlCore`
    for core)."""
    if concern == "core":
        return SqlCore
    module = importlib.import_module(f"waypost.store.sql.{concern}")
    [mixin] = [value for value in vars(module).values() if inspect.isclass(value)
               and value.__module__ == module.__name__ and issubclass(value, SqlCore)]
    return mixin


def test_protocol_and_sqltx_have_the_same_verbs() -> None:
    assert protocol_verbs() == public(SqlTx) - PLUMBING
    assert public(Tx) - {"mro"} == protocol_verbs(), "Tx is the union of the concerns"


def test_every_sql_module_has_its_protocol_module() -> None:
    package = importlib.import_module("waypost.store.sql")
    assert set(CONCERNS) == {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert set(CONCERNS.values()) <= set(Tx.__mro__)


@pytest.mark.parametrize("concern", sorted(CONCERNS))
def test_each_concern_lists_the_verbs_of_its_sql_module(concern: str) -> None:
    ours, theirs = CONCERNS[concern], sql_mixin(concern)
    assert own_verbs(ours) == own_verbs(theirs), concern
    for name in own_verbs(ours):
        assert inspect.signature(getattr(ours, name)) == inspect.signature(
            getattr(theirs, name)), f"{concern}.{name}"


def test_every_verb_is_documented_with_its_atomicity() -> None:
    for name in protocol_verbs():
        doc = inspect.getdoc(getattr(Tx, name)) or ""
        assert doc, f"Tx.{name} has no docstring"


def test_signatures_agree() -> None:
    for name in protocol_verbs():
        ours = inspect.signature(getattr(Tx, name))
        theirs = inspect.signature(getattr(SqlTx, name))
        assert list(ours.parameters) == list(theirs.parameters), name
