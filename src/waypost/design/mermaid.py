"""Mermaid text of a definition: `flowchart` for a flow, `stateDiagram-v2` for a machine,
renderable as it is by GitHub and mermaid-cli."""

from __future__ import annotations

import re
from typing import Any

from ..dag.flow import Flow
from ..machine.define import Machine


def _id(name: str) -> str:
    """A Mermaid identifier for a step or state name (which may hold [ ] # . :)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _label(text: str) -> str:
    return text.replace('"', "'")


def flowchart(flow: Flow[Any, Any]) -> str:
    lines = ["flowchart TD"]
    graph = flow.graph
    for node in graph.nodes.values():
        short = node.task.rpartition(":")[2]
        if node.kind == "gate":
            lines.append(f'    {_id(node.name)}{{{{"gate {_label(node.name)}"}}}}')
        elif node.kind == "sleep":
            lines.append(f'    {_id(node.name)}(["{_label(node.name)}"])')
        elif node.kind == "event":
            lines.append(f'    {_id(node.name)}>"wait for {_label(node.options["topic"])}"]')
        elif node.kind == "child":
            child = _label(node.options["child"]["name"])
            lines.append(f'    {_id(node.name)}[/"{_label(node.name)}: child {child}"/]')
        elif node.kind == "map":
            lines.append(f'    {_id(node.name)}[["{_label(node.name)}: map {_label(short)}"]]')
        else:
            lines.append(f'    {_id(node.name)}["{_label(node.name)}"]')
    for node in graph.nodes.values():
        for dep in node.deps:
            arrow = "-.->" if dep in node.after else "-->"
            lines.append(f"    {_id(dep)} {arrow} {_id(node.name)}")
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def state_diagram(machine: type[Machine]) -> str:
    lines = ["stateDiagram-v2"]
    body = machine.compile()[2].body
    states: dict[str, dict[str, Any]] = body["states"]
    lines.append(f"    [*] --> {_id(body['initial'])}")
    for name, spec in states.items():
        sid = _id(name)
        if sid != name:
            lines.append(f'    state "{_label(name)}" as {sid}')
        for route in spec.get("done", []):
            guard = " [guard]" if route["guard"] is not None else ""
            lines.append(f"    {sid} --> {_id(route['to'])}: done{guard}")
        for kind, target in spec.get("errors", []):
            lines.append(f"    {sid} --> {_id(target)}: error {_label(kind)}")
        for event, routes in spec.get("on", {}).items():
            for route in routes:
                guard = " [guard]" if route["guard"] is not None else ""
                lines.append(f"    {sid} --> {_id(route['to'])}: {_label(event)}{guard}")
        if spec.get("then") is not None:
            when = (f"after {_seconds(spec['after'])}" if spec.get("after") is not None
                    else f"at {spec['until']['at'][:5]} {spec['until']['tz']}")
            lines.append(f"    {sid} --> {_id(spec['then'])}: {when}")
        if "child" in spec:
            lines.append(f"    note right of {sid}: child {_label(spec['child']['name'])}")
        if "final" in spec:
            lines.append(f"    {sid} --> [*]")
    failed = [_id(n) for n, s in states.items() if s.get("final") == "failed"]
    if failed:
        lines.append("    classDef failed fill:#fdd,stroke:#c00")
        lines.append(f"    class {','.join(failed)} failed")
    return "\n".join(lines) + "\n"


def mermaid(definition: Any) -> str:
    if isinstance(definition, type) and issubclass(definition, Machine):
        return state_diagram(definition)
    if isinstance(definition, Flow):
        return flowchart(definition)
    raise TypeError(f"{definition!r} is neither a flow nor a machine")
