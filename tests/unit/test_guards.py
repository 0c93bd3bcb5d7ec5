"""Guards on interfaces users rely on: the public exports and the documented CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import click

import waypost
from waypost.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_public_exports_are_pinned() -> None:
    assert set(waypost.__all__) == {
        "Backoff", "Cancelled", "Context", "DefinitionError", "Engine", "Fatal", "Flow",
        "IdempotencyConflict", "InputError", "Limit", "ResultTimeout", "RunFailed", "StoreError",
        "Task", "UnknownTargetError", "WaypostError", "Worker", "__version__", "flow", "limit",
        "task", "after", "gate", "sleep", "sleep_until",
    }
    for name in waypost.__all__:
        assert hasattr(waypost, name), name


def _commands() -> list[tuple[str, click.Command]]:
    """Every command, with sub-commands of groups (`dlq list`) named in full."""
    found: list[tuple[str, click.Command]] = []
    for name, command in main.commands.items():
        found.append((name, command))
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
    return found


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name, _ in _commands() if f"`waypost {name}" not in readme]
    assert not missing, f"commands not documented in README.md: {missing}"


def test_imports_flow_one_way() -> None:
    """The store never imports the runtime; the DAG front-end never imports the runtime."""
    for layer, forbidden in (("store", ("runtime", "cli")), ("dag", ("runtime", "cli"))):
        for path in (ROOT / "src" / "waypost" / layer).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    target = node.module.lstrip(".").split(".")[0]
                    assert target not in forbidden, f"{path.name} imports {node.module}"


def test_store_does_not_import_definitions() -> None:
    for path in (ROOT / "src" / "waypost" / "store").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.lstrip(".").startswith("dag"), path.name


def test_every_cli_option_is_in_the_guide() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    missing = []
    for name, command in _commands():
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help" and opt not in guide:
                    missing.append(f"waypost {name} {opt}")
    assert not missing, f"options not documented in docs/guide.md: {missing}"
