"""The static graph a flow compiles to, and the templates that wire outputs to inputs.

A graph is plain JSON so it can be stored with every run: a run is driven by the graph it
started with, never by whatever code a worker happens to have now. Task *bodies* may change
between attempts (that is how a fix is deployed before `resume`); the *shape* may not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import DefinitionError

REF = "$ref"
PARAM = "$param"
LITERAL = "$lit"


class Ref:
    """A placeholder for a value that exists only at run time: a step's output or a flow
    parameter. Indexing it (`order["id"]`) makes a narrower placeholder."""

    __slots__ = ("_path", "_source")

    def __init__(self, source: tuple[str, str], path: tuple[Any, ...] = ()) -> None:
        self._source = source
        self._path = path

    def __getitem__(self, key: Any) -> Ref:
        if not isinstance(key, str | int):
            raise DefinitionError("placeholders can be indexed only by str or int")
        return Ref(self._source, (*self._path, key))

    def _refuse(self, *_: Any) -> Any:
        kind, name = self._source
        raise DefinitionError(
            f"the value of {kind} {name!r} exists only at run time; a flow body only wires "
            "tasks together, so decide on values inside a task"
        )

    __bool__ = _refuse
    __len__ = _refuse
    __eq__ = _refuse
    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Iterator[Any]:
        return self._refuse()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        kind, name = self._source
        return f"<{kind} {name}{''.join(f'[{p!r}]' for p in self._path)}>"

    def step_name(self) -> str | None:
        """The step this placeholder is the whole output of, if it is one."""
        kind, name = self._source
        return name if kind == "step" and not self._path else None

    def to_template(self) -> dict[str, Any]:
        kind, name = self._source
        return {REF if kind == "step" else PARAM: name, "path": list(self._path)}


def to_template(value: Any) -> Any:
    """Encode a flow-body value (literals with placeholders inside) as JSON."""
    if isinstance(value, Ref):
        return value.to_template()
    if isinstance(value, list | tuple):
        return [to_template(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise DefinitionError("dict keys passed to a task must be strings (JSON)")
        encoded = {k: to_template(v) for k, v in value.items()}
        return {LITERAL: encoded} if any(k.startswith("$") for k in value) else encoded
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise DefinitionError(f"a {type(value).__name__} cannot be passed to a task: use JSON values")


def template_refs(template: Any) -> list[str]:
    """The step nodes a template reads, in first-use order."""
    found: list[str] = []

    def walk(t: Any) -> None:
        if isinstance(t, dict):
            if REF in t:
                if t[REF] not in found:
                    found.append(t[REF])
                return
            if PARAM in t:
                return
            for v in (t.get(LITERAL, t)).values():
                walk(v)
        elif isinstance(t, list):
            for v in t:
                walk(v)

    walk(template)
    return found


def render(template: Any, outputs: dict[str, Any], params: dict[str, Any]) -> Any:
    """Fill a template with step outputs and flow parameters."""
    if isinstance(template, list):
        return [render(t, outputs, params) for t in template]
    if not isinstance(template, dict):
        return template
    if REF in template or PARAM in template:
        value = outputs[template[REF]] if REF in template else params[template[PARAM]]
        for key in template["path"]:
            try:
                value = value[key]
            except (KeyError, IndexError, TypeError) as exc:
                src = template.get(REF) or template.get(PARAM)
                raise LookupError(f"{src}{template['path']}: no {key!r} in {value!r:.80}") from exc
        return value
    inner = template.get(LITERAL, template)
    return {k: render(v, outputs, params) for k, v in inner.items()}


@dataclass
class Node:
    name: str
    task: str
    kind: str  # "task" | "map"
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    over: Any = None  # map nodes: the template of the list to map over
    deps: list[str] = field(default_factory=list)
    #: The deps that only order this node (a gate, a sleep, `wp.after`): no data flows.
    after: list[str] = field(default_factory=list)

    @property
    def data_deps(self) -> list[str]:
        return [d for d in self.deps if d not in self.after] if self.after else self.deps

    def to_json(self) -> dict[str, Any]:
        data = {"name": self.name, "task": self.task, "kind": self.kind, "args": self.args,
                "kwargs": self.kwargs, "options": self.options, "deps": self.deps}
        if self.kind == "map":
            data["over"] = self.over
        if self.after:  # absent when empty, so older graphs keep their fingerprints
            data["after"] = self.after
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Node:
        return cls(**data)


@dataclass
class Graph:
    flow: str
    params: list[str]
    nodes: dict[str, Node]
    output: Any
    successors: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        self.successors = {name: [] for name in self.nodes}
        for node in self.nodes.values():
            for dep in node.deps:
                self.successors[dep].append(node.name)

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "params": self.params, "output": self.output,
                "nodes": [n.to_json() for n in self.nodes.values()]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Graph:
        nodes = {n["name"]: Node.from_json(n) for n in data["nodes"]}
        return cls(data["flow"], data["params"], nodes, data["output"])

    def body(self) -> str:
        return self._body

    def fingerprint(self) -> str:
        return self._fingerprint

    # A graph never changes once built, so its text and fingerprint are computed once.
    @cached_property
    def _body(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @cached_property
    def _fingerprint(self) -> str:
        return hashlib.sha256(self._body.encode()).hexdigest()[:24]

    def downstream(self, name: str) -> list[str]:
        """Every node that transitively needs `name`, in discovery order."""
        seen: dict[str, None] = {}
        stack = list(self.successors[name])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen[n] = None
                stack.extend(self.successors[n])
        return list(seen)
