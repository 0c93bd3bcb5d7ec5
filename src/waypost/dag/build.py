"""Building a graph by calling the flow body once with placeholders."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..errors import DefinitionError
from ..vocabulary.recording import current_recorder, recording
from .graph import Node, Ref, template_refs, to_template

if TYPE_CHECKING:
    from ..vocabulary.task import Task


def current_builder() -> GraphBuilder | None:
    """The graph a flow body being built records into, if a body is being built."""
    found = current_recorder()
    return found if isinstance(found, GraphBuilder) else None


class GraphBuilder:
    def __init__(self, flow: str) -> None:
        self.flow = flow
        self.nodes: dict[str, Node] = {}
        self._counts: dict[str, int] = {}
        self._recording: AbstractContextManager[None] | None = None
        # Ordering without data: the last gate or sleep, the nodes added since, and the
        # steps named by enclosing `wp.after(...)` blocks.
        self._barrier: str | None = None
        self._since_barrier: list[str] = []
        self.after_stack: list[list[str]] = []
        #: (fingerprint, name, kind, body) of the definitions `wp.child` steps start.
        self.children: list[tuple[str, str, str, str]] = []

    def __enter__(self) -> GraphBuilder:
        self._recording = recording(self)
        self._recording.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._recording is not None
        self._recording.__exit__(None, None, None)

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
        order = [d for d in self._ordering() if d not in deps]
        self.nodes[name] = Node(name=name, task=task.name, kind=kind, args=targs,
                                kwargs=tkwargs, options=task.options(), over=tover,
                                deps=deps + order, after=order)
        self._since_barrier.append(name)
        return Ref(("step", name))

    def add_child(self, definition: Any, input: Any) -> Ref:
        """A step that starts a run of `definition` with `input` (a dict, which may hold
        parameters and outputs) and waits for it; its output is the child's."""
        fingerprint, body, driver = definition.compile()
        self.children.append((fingerprint, definition.name, definition.kind, body))
        self.children += driver.children
        short = str(definition.name).rpartition(":")[2].rpartition(".")[2] or "child"
        name = self._unique(short)
        template = to_template(input)
        deps = template_refs(template)
        for dep in deps:
            if dep not in self.nodes:
                raise DefinitionError(f"{name} uses {dep!r}, which belongs to another flow")
        order = [d for d in self._ordering() if d not in deps]
        self.nodes[name] = Node(name=name, task="waypost.child", kind="child", args=[template],
                                kwargs={}, options={"max_attempts": 1, "timeout": None,
                                                    "child": {"definition": fingerprint,
                                                              "name": definition.name,
                                                              "kind": definition.kind}},
                                deps=deps + order, after=order)
        self._since_barrier.append(name)
        return Ref(("step", name))

    def _ordering(self) -> list[str]:
        found = [self._barrier] if self._barrier else []
        for group in self.after_stack:
            found += [d for d in group if d not in found]
        return found

    def add_wait(self, kind: str, name: str, options: dict[str, Any],
                 reads: list[str] | None = None) -> Ref:
        """A gate or a sleep: it starts once everything called before it in the body has
        finished (and the steps it `reads` a time from), and everything called after it
        waits for it."""
        if kind == "gate" and name in self._counts:
            raise DefinitionError(f"flow {self.flow} has two steps named {name!r}; "
                                  "give each gate its own name")
        name = self._unique(name)
        needed = {d for n in self._since_barrier for d in self.nodes[n].deps}
        deps = [n for n in self._since_barrier if n not in needed]
        deps = deps or self._ordering()
        deps += [d for d in self._ordering() if d not in deps and d != self._barrier]
        reads = reads or []
        for dep in reads:
            if dep not in self.nodes:
                raise DefinitionError(f"{name} uses {dep!r}, which belongs to another flow")
        order = [d for d in deps if d not in reads]
        self.nodes[name] = Node(name=name, task=f"waypost.{kind}", kind=kind, args=[],
                                kwargs={}, options={"max_attempts": 1, "timeout": None,
                                                    **options},
                                deps=reads + order, after=order)
        self._barrier, self._since_barrier = name, []
        return Ref(("step", name))
