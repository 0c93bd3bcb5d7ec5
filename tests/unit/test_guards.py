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
        "task", "after", "gate", "sleep", "sleep_until", "Machine", "State", "Final", "to", "child",
        "Handler", "emit", "on", "wait_for",
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


#: The front-ends: they compile definitions to drivers. Machines and events join here.
FRONT_ENDS = ("dag", "machine")


def _imports(layer: str) -> list[tuple[str, str]]:
    """(file, imported top-level waypost package) for every relative or absolute import."""
    found = []
    for path in (ROOT / "src" / "waypost" / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module
                if node.level == 0:
                    if not module.startswith("waypost."):
                        continue
                    module = module.removeprefix("waypost.")
                elif node.level == 1:
                    module = f"{layer}.{module}"
                found.append((path.name, module.split(".")[0]))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("waypost."):
                        found.append((path.name, alias.name.split(".")[1]))
    return found


def test_imports_flow_one_way() -> None:
    """Definitions -> runtime -> store: the runtime runs every front-end through the driver
    seam (runtime/driver.py) and knows none of them; the store knows neither."""
    for layer, forbidden in (("runtime", (*FRONT_ENDS, "cli")),
                             ("store", ("runtime", *FRONT_ENDS, "cli"))):
        bad = [(f, m) for f, m in _imports(layer) if m in forbidden]
        assert not bad, f"{layer}/ imports what it must not: {bad}"


def test_front_ends_reach_the_runtime_only_through_the_seam() -> None:
    for front_end in FRONT_ENDS:
        for path in (ROOT / "src" / "waypost" / front_end).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.ImportFrom) and node.module and node.level == 2
                        and node.module.startswith("runtime")):
                    assert node.module == "runtime.driver", f"{path.name}: {node.module}"


def test_every_cli_option_is_in_the_guide() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    missing = []
    for name, command in _commands():
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help" and opt not in guide:
                    missing.append(f"waypost {name} {opt}")
    assert not missing, f"options not documented in docs/guide.md: {missing}"
