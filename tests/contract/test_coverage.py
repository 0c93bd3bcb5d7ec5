"""Every verb of the store's protocol is held to its promise in its concern's contract file:
a verb added to `Tx` without an assertion about what it did fails here, and so does a
fenced verb whose stale caller is not shown to change nothing.

The rule, checked on the syntax tree of tests/contract/test_verbs_<concern>.py for each
verb of protocol/<concern>.py. A call `tx.verb(...)` is *checked* when

- it sits inside an `assert` or a `with pytest.raises(...)` block; or
- the verb returns a value, and the statement holding the call binds it (an assignment,
  a `for`, a nested function's `return`) to a name that a later `assert` of the same
  function reads, directly or through further assignments; or
- the verb returns None, and a later `assert` of the same function reads the store (its
  expression calls something, or reads a name assigned after the call).

A bare call of a verb that returns a value is never checked; each verb needs a checked
call, and a verb whose docstring names a fence (fenced by, a unique key, ...) needs two:
the stale caller and the right one.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_store_protocol import own_verbs, protocol_verbs
from waypost.store.protocol import CONCERNS

HERE = Path(__file__).parent
FENCE = re.compile(r"(?<!un)fenced\b|\bunique\b|primary key|collide|`token` holds|is kept|"
                   r"however often|is taken|only that one", re.IGNORECASE)


def returns_none(verb: str, concern: type) -> bool:
    return inspect.signature(getattr(concern, verb)).return_annotation in ("None", None)


def fenced(verb: str, concern: type) -> bool:
    return bool(FENCE.search(" ".join((inspect.getdoc(getattr(concern, verb)) or "").split())))


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _calls_something(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) for n in ast.walk(node))


def _raises(node: ast.With) -> bool:
    return any(isinstance(item.context_expr, ast.Call) and isinstance(
        item.context_expr.func, ast.Attribute) and item.context_expr.func.attr == "raises"
        for item in node.items)


class Function:
    """One module-level function of a contract file, with what its asserts read."""

    def __init__(self, fn: ast.FunctionDef) -> None:
        self.fn = fn
        self.parent: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(fn):
            for child in ast.iter_child_nodes(node):
                self.parent[child] = node
        self.asserts = [n for n in ast.walk(fn) if isinstance(n, ast.Assert)]
        self.raising = [n for n in ast.walk(fn) if isinstance(n, ast.With) and _raises(n)]
        self.bindings: list[tuple[int, set[str], ast.AST]] = []  # (line, names bound, value)
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                self.bindings.append((node.lineno, set().union(*map(_names, targets)),
                                      node.value))
            elif isinstance(node, ast.For):
                self.bindings.append((node.lineno, _names(node.target), node.iter))
            elif isinstance(node, ast.Return) and node.value is not None:
                self.bindings.append((node.lineno, {self._function_of(node)}, node.value))

    def _function_of(self, node: ast.AST) -> str:
        while not isinstance(node, ast.FunctionDef | ast.Lambda):
            node = self.parent[node]
        return node.name if isinstance(node, ast.FunctionDef) else "<lambda>"

    def _ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        while node in self.parent:
            node = self.parent[node]
            yield node

    def checked(self, call: ast.Call, value_matters: bool) -> bool:
        ancestors = list(self._ancestors(call))
        if any(isinstance(a, ast.Assert) for a in ancestors) or any(
                w in ancestors and any(call in ast.walk(s) for s in w.body)
                for w in self.raising):
            return True
        after = call.lineno
        if not value_matters:
            fresh = set().union(*(names for line, names, _ in self.bindings if line > after))
            return any(a.lineno > after and (_calls_something(a.test) or _names(a.test) & fresh)
                       for a in self.asserts)
        statement = next(a for a in ancestors if isinstance(a, ast.stmt))
        derived = set().union(*(names for line, names, value in self.bindings
                                if line == statement.lineno and call in ast.walk(value)))
        grew = True
        while grew:
            grew = False
            for line, names, value in self.bindings:
                if line >= after and _names(value) & derived and not names <= derived:
                    derived |= names
                    grew = True
        return any(a.lineno > after and _names(a.test) & derived for a in self.asserts)


def verb_calls(path: Path) -> Iterator[tuple[str, ast.Call, Function]]:
    """Each `tx.x(...)` of a file, with the module-level function that makes it."""
    for fn in ast.parse(path.read_text()).body:
        if isinstance(fn, ast.FunctionDef):
            function = Function(fn)
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        isinstance(node.func.value, ast.Name) and node.func.value.id == "tx":
                    yield node.func.attr, node, function


def checked_calls(concern: str) -> Counter[str]:
    """How many checked calls of each of `concern`'s verbs its contract file makes."""
    protocol = CONCERNS[concern]
    verbs = own_verbs(protocol)
    found: Counter[str] = Counter()
    for verb, call, function in verb_calls(HERE / f"test_verbs_{concern}.py"):
        if verb in verbs and function.checked(call, not returns_none(verb, protocol)):
            found[verb] += 1
    return found


def missing(concern: str) -> list[str]:
    protocol, found = CONCERNS[concern], checked_calls(concern)
    return sorted(f"{verb} ({found[verb]} of {2 if fenced(verb, protocol) else 1})"
                  for verb in own_verbs(protocol)
                  if found[verb] < (2 if fenced(verb, protocol) else 1))


def test_the_concerns_cover_the_protocol() -> None:
    assert set().union(*map(own_verbs, CONCERNS.values())) == protocol_verbs()


@pytest.mark.parametrize("concern", sorted(CONCERNS))
def test_every_verb_is_asserted_in_its_concerns_contract_file(concern: str) -> None:
    gaps = missing(concern)
    assert not gaps, f"test_verbs_{concern}.py lacks checked calls of: {gaps}"


def test_a_bare_call_is_not_an_assertion(tmp_path: Path) -> None:
    """The rule itself: a value thrown away, or a write nobody reads back, is no check."""
    path = tmp_path / "test_verbs_x.py"
    path.write_text(
        "def test_bare(store):\n"
        "    store.transact(lambda tx: tx.end_run('r', 'failed', 'e'))\n"
        "    got = store.transact(lambda tx: tx.end_run('r', 'failed', 'e'))\n"
        "    store.transact(lambda tx: tx.finish_run('r', 'failed', None, 'e'))\n"
        "    assert True\n"
        "def test_checked(store):\n"
        "    kept = store.transact(lambda tx: tx.end_run('r', 'failed', 'e'))\n"
        "    store.transact(lambda tx: tx.finish_run('r', 'failed', None, 'e'))\n"
        "    assert kept is False and read(store)\n")
    found = [(verb, function.checked(call, verb == "end_run"))
             for verb, call, function in verb_calls(path)]
    assert found == [("end_run", False), ("end_run", False), ("finish_run", False),
                     ("end_run", True), ("finish_run", True)]
