"""Guards on interfaces users rely on: the public exports and the documented CLI."""

from __future__ import annotations

import ast
import functools
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


#: The front-ends: each compiles its definitions to drivers, side by side above the runtime.
FRONT_ENDS = ("dag", "machine", "chains")
#: What users touch: nothing below may know of it.
SURFACES = ("api", "cli", "design", "demo")


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (`waypost.runtime.core.advance`)."""
    src = ROOT / "src"
    found = {}
    for path in (src / "waypost").rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """module -> the modules it imports, read from the code: every import statement, at
    any depth (inside functions and `if TYPE_CHECKING:` too: a layer that names another
    only for types still knows it)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:  # `from . import codec`
                        edges.add(f"{target}.{alias.name}")
                    elif target in modules:
                        edges.add(target)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
        edges.discard(name)
    return graph


def _reach(graph: dict[str, set[str]], start: str) -> dict[str, list[str]]:
    """Every module `start` reaches, with one path that shows how."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        here = todo.pop()
        for there in sorted(graph[here]):
            if there not in paths:
                paths[there] = [*paths[here], there]
                todo.append(there)
    return paths


def _unit(module: str) -> str:
    """The top-level package or module that holds `module` (`runtime`, `codec`)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _layer_violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    graph = import_graph()
    bad = []
    for module in sorted(graph):
        if _unit(module) != layer:
            continue
        for reached, path in _reach(graph, module).items():
            if _unit(reached) in forbidden:
                bad.append(" -> ".join(path))
                break
    return bad


def test_the_runtime_and_the_store_reach_no_front_end_nor_surface() -> None:
    """Definitions -> runtime -> store, directly or through any other module: the runtime
    runs every front-end through the seam (runtime/seam/) and knows none of them; the
    store knows neither."""
    for layer, forbidden in (("runtime", (*FRONT_ENDS, *SURFACES)),
                             ("store", ("runtime", *FRONT_ENDS, *SURFACES)),
                             ("vocabulary", ("runtime", *FRONT_ENDS, *SURFACES))):
        bad = _layer_violations(layer, forbidden)
        assert not bad, f"{layer}/ reaches what it must not: {bad}"


def test_front_ends_reach_the_runtime_only_through_the_seam() -> None:
    graph = import_graph()
    for module, imports in graph.items():
        if _unit(module) in FRONT_ENDS:
            into_runtime = {m for m in imports if _unit(m) == "runtime"}
            assert into_runtime <= {"waypost.runtime.seam"}, f"{module}: {into_runtime}"
    seam = [m for m in graph if m.startswith("waypost.runtime.seam")]
    for module in seam:  # and the seam leads nowhere else in the runtime
        beyond = {m for m in _reach(graph, module)
                  if _unit(m) == "runtime" and not m.startswith("waypost.runtime.seam")}
        assert not beyond, f"{module} reaches {beyond}"


def test_front_ends_stand_side_by_side() -> None:
    for front_end in FRONT_ENDS:
        others = tuple(f for f in FRONT_ENDS if f != front_end)
        bad = _layer_violations(front_end, others)
        assert not bad, f"{front_end}/ reaches another front-end: {bad}"


def test_no_import_circle_between_top_level_packages() -> None:
    """Read as packages (runtime, store, dag, ...), the imports form no loop. The package
    itself (`waypost/__init__.py`, the public API) re-exports everything and is left out."""
    units: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        if _unit(module):
            units.setdefault(_unit(module), set()).update(
                _unit(m) for m in imports if _unit(m) and _unit(m) != _unit(module))
    circles = []
    for unit in sorted(units):
        for reached, path in _reach(units, unit).items():
            if unit in units[reached]:
                circles.append(" -> ".join([*path, unit]))
    assert not circles, f"import circles between packages: {circles}"


def test_the_guard_sees_an_indirect_import() -> None:
    """The walk follows imports through other modules: a guard that only read direct
    imports would pass a runtime that reached a front-end through a helper."""
    graph = {"waypost.runtime.a": {"waypost.codec"}, "waypost.codec": {"waypost.dag.flow"},
             "waypost.dag.flow": set()}
    assert "waypost.dag.flow" in _reach(graph, "waypost.runtime.a")
    assert "waypost.runtime.seam" in import_graph()["waypost.dag.driver"]


def test_no_module_is_over_400_lines() -> None:
    long = {str(path.relative_to(ROOT)): n for path in _modules().values()
            if (n := len(path.read_text().splitlines())) > 400}
    assert not long, f"modules to split: {long}"


def test_every_cli_option_is_in_the_guide() -> None:
    guide = (ROOT / "docs" / "guide.md").read_text()
    missing = []
    for name, command in _commands():
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help" and opt not in guide:
                    missing.append(f"waypost {name} {opt}")
    assert not missing, f"options not documented in docs/guide.md: {missing}"
