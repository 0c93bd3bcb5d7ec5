"""Every verb of the store's protocol is called by a contract test: a verb added to `Tx`
without one fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_store_protocol import protocol_verbs


def verbs_called() -> set[str]:
    """Names `x` in `tx.x(...)` anywhere in tests/contract/."""
    called = set()
    for path in Path(__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    isinstance(node.func.value, ast.Name) and node.func.value.id == "tx":
                called.add(node.func.attr)
    return called


def test_every_verb_has_a_contract_test() -> None:
    missing = protocol_verbs() - verbs_called()
    assert not missing, f"verbs with no contract test in tests/contract/: {sorted(missing)}"
