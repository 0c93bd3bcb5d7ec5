"""Building a graph by calling the flow body once with placeholders."""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from .graph import Node, Ref, template_refs, to_template

if TYPE_CHECKING:
    from .task import Task

_builder: contextvars.ContextVar[GraphBuilder | None] = contextvars.ContextVar(
    "waypost_builder", default=None
)


def current_builder() -> GraphBuilder | None:
    return _builder.get()


class GraphBuilder:
    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.nodes: dict[str, Node] = {}
        self._counts: dict[str, int] = {}
        self._token: contextvars.Token[GraphBuilder | None] | None = None

    def __enter__(self) -> GraphBuilder:
        self._token = _builder.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _builder.reset(self._token)

    def _unique(self, base: str) -> str:
        n = self._counts[base] = self._counts.get(base, 0) + 1
        name = base if n == 1 else f"{base}#{n}"
        if name in self.nodes:
            raise DefinitionError(f"two tasks in flow {self.flow} would both be named {name!r}")
        return name

    def add(self, task: Task[Any, Any], kind: str, args: list[Any], kwargs: dict[str, Any],
            over: Any = None) -> Ref:
        name = self._unique(task.short_name)
        targs, tkwargs = to_template(args), to_template(kwargs)
        tover = to_template(over) if kind == "map" else None
        if kind == "map" and not isinstance(over, Ref | list | tuple):
            raise DefinitionError(f"{task.short_name}.map() needs a list or a task's output")
        deps = template_refs([tover, targs, tkwargs])
        for dep in deps:
            if dep not in self.nodes:
                raise DefinitionError(f"{name} uses {dep!r}, which belongs to another flow")
        self.nodes[name] = Node(name=name, task=task.name, kind=kind, args=targs,
                                kwargs=tkwargs, options=task.options(), over=tover, deps=deps)
        return Ref(("step", name))
