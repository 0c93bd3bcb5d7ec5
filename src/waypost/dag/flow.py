"""`@wp.flow`: a function whose body wires tasks into a static graph.

The body runs exactly once, at definition time, with placeholders for its parameters; it
never runs again while a run executes. That is why a flow body needs no determinism rules:
the graph, not the code, is what is stored and resumed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from .. import codec
from ..errors import DefinitionError, InputError
from ..masking import declare
from ..registry import registry
from ..vocabulary.schedule import spec_of
from ..vocabulary.topics import check_pattern
from .build import GraphBuilder, current_builder
from .driver import DagDriver
from .graph import Graph, Ref, to_template

P = ParamSpec("P")
R = TypeVar("R")

#: The parameter of a scheduled flow that gets the fire's due time (ISO 8601, UTC).
TIME_PARAM = "scheduled_at"

_JSON_TYPES: dict[Any, tuple[type, ...]] = {
    int: (int,), float: (int, float), str: (str,), bool: (bool,), dict: (dict,),
    list: (list,), "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
    "dict": (dict,), "list": (list,),
}


class Flow(Generic[P, R]):
    """A DAG definition (runtime/driver.py `Definition`): compiled once to a graph and the
    DAG driver that runs it."""

    kind = "dag"

    def __init__(self, fn: Callable[P, R], *, name: str | None = None,
                 deadline: timedelta | float | None = None, trigger: str | None = None,
                 schedule: str | None = None, every: timedelta | float | None = None,
                 tz: str | None = None, missed: str = "once",
                 secret: Iterable[str] | str | None = None) -> None:
        self.fn = fn
        #: Parameters (or fields of them) never shown (masking.py).
        self.secret = declare(secret, f"flow {fn.__name__}")
        self.deadline = deadline
        #: A topic pattern: every matching event starts a run, with its payload as input.
        self.trigger = None if trigger is None else check_pattern(trigger, f"flow {fn.__name__}")
        self.name = name or f"{fn.__module__}:{fn.__qualname__}"
        self.signature = inspect.signature(fn)
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise DefinitionError(f"flow {self.name}: parameters must be named ({p})")
        self._graph: Graph | None = None
        self._driver: DagDriver | None = None
        self._children: list[tuple[str, str, str, str]] = []
        self.__doc__ = fn.__doc__
        registry.declare_definition(self)
        if self.trigger is not None:
            self.pattern = self.trigger
            registry.declare_subscriber(self)
        #: When it starts by itself (schedule.py), with the input each fire has.
        self.schedule: dict[str, Any] | None = None
        self._timed = False  # it has a parameter for the due time
        if schedule is not None or every is not None or tz is not None:
            self.schedule = self._scheduled(schedule, every, tz, missed)
        registry.declare_schedule(self)

    def _scheduled(self, cron: str | None, every: timedelta | float | None, tz: str | None,
                   missed: str) -> dict[str, Any]:
        where = f"flow {self.name}"
        spec = spec_of(cron, every, tz, missed, where)
        params = self.signature.parameters
        needed = [p for p in params if p != TIME_PARAM and
                  params[p].default is inspect.Parameter.empty]
        if needed:
            raise DefinitionError(f"{where}: a scheduled flow starts with no input, so its "
                                  f"parameters need defaults ({', '.join(needed)} has none; "
                                  f"a parameter {TIME_PARAM!r} gets the fire's due time)")
        self._timed = TIME_PARAM in params
        try:
            bound = self.bind_input({})  # each fire's due time is put in when it fires
            spec["input"] = {k: v for k, v in bound.items() if k != TIME_PARAM}
        except InputError as exc:
            raise DefinitionError(str(exc)) from None
        spec["time_param"] = self._timed
        spec["deadline"] = self.default_deadline
        return spec

    @property
    def graph(self) -> Graph:
        if self._graph is None:
            self._graph = self._build()
        return self._graph

    def compile(self) -> tuple[str, str, DagDriver]:
        """(fingerprint, stored body, driver). Runs the flow body the first time."""
        if self._driver is None:
            self._driver = DagDriver(self.graph)
            self._driver.children = self._children
        return self.graph.fingerprint(), self.graph.body(), self._driver

    @property
    def default_deadline(self) -> float | None:
        if isinstance(self.deadline, timedelta):
            return self.deadline.total_seconds()
        return None if self.deadline is None else float(self.deadline)

    def _build(self) -> Graph:
        params = list(self.signature.parameters)
        with GraphBuilder(self.name) as builder:
            placeholders: dict[str, Any] = {p: Ref(("param", p)) for p in params}
            out = self.fn(**placeholders)  # type: ignore[call-arg]
        if not builder.nodes:
            raise DefinitionError(f"flow {self.name} calls no task")
        self._children = builder.children
        return Graph(self.name, params, builder.nodes, to_template(out))

    def bind_input(self, data: Any) -> dict[str, Any]:
        """Check a run's input against the flow's signature, filling defaults."""
        if data is None:
            data = {}
        if self._timed and isinstance(data, dict) and TIME_PARAM not in data:
            # a scheduled flow started by hand (or while being declared) runs for now
            data = {TIME_PARAM: datetime.now(UTC).isoformat(timespec="milliseconds"), **data}
        if not isinstance(data, dict):
            raise InputError(f"flow {self.name} takes a JSON object of its parameters, "
                             f"not {type(data).__name__}")
        try:
            bound = self.signature.bind(**data)
        except TypeError as exc:
            expected = ", ".join(str(p) for p in self.signature.parameters.values()) or "none"
            raise InputError(f"input does not fit flow {self.name}({expected}): {exc}") from None
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            allowed = _JSON_TYPES.get(self.signature.parameters[name].annotation)
            if allowed and (not isinstance(value, allowed) or
                            (isinstance(value, bool) and bool not in allowed)):
                got = f"{type(value).__name__} {value!r:.40}"
                raise InputError(f"flow {self.name}: parameter {name!r} expects "
                                 f"{allowed[-1].__name__}, got {got}")
        arguments = dict(bound.arguments)
        try:
            codec.dumps(arguments, codec.MAX_DEPTH)
        except TypeError as exc:
            raise InputError(f"input of flow {self.name} must be JSON: {exc}") from None
        return arguments

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise DefinitionError(f"start flow {self.name} with engine.start() or engine.run()")

    def __repr__(self) -> str:
        return f"<flow {self.name}>"


@overload
def flow(fn: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(*, name: str | None = None, deadline: timedelta | float | None = None,
         trigger: str | None = None, schedule: str | None = None,
         every: timedelta | float | None = None, tz: str | None = None,
         missed: str = "once", secret: Iterable[str] | str | None = None,
         ) -> Callable[[Callable[P, R]], Flow[P, R]]: ...


def flow(
    fn: Callable[P, R] | None = None, /, *, name: str | None = None,
    deadline: timedelta | float | None = None, trigger: str | None = None,
    schedule: str | None = None, every: timedelta | float | None = None,
    tz: str | None = None, missed: str = "once", secret: Iterable[str] | str | None = None,
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Declare a flow: its body calls tasks, and data passed between them are the edges.
    `deadline` (a timedelta or seconds) applies to every run unless `start` gives one.
    `trigger` (a topic pattern): every matching event starts a run, once per event, with
    the event's payload (a JSON object of the parameters) as its input.
    `schedule` (cron, in zone `tz`) or `every` (a timedelta): a run starts at each due
    time, once however many workers run; a parameter named `scheduled_at` gets the due
    time. After a time with no worker, `missed="once"` fires the latest due time late,
    `"skip"` waits for the next one (schedule.py). `secret` names parameters (or fields
    of them) shown as "***" in the API, the dashboard and the logs."""

    def wrap(f: Callable[P, R]) -> Flow[P, R]:
        return Flow(f, name=name, deadline=deadline, trigger=trigger, schedule=schedule,
                    every=every, tz=tz, missed=missed, secret=secret)

    return wrap(fn) if fn is not None else wrap


def child(definition: Any, input: dict[str, Any] | None = None) -> Any:
    """In a flow body: a step that starts a run of `definition` (a flow or a machine) with
    `input` (which may hold the flow's parameters and tasks' outputs) and waits for it,
    holding no worker. Its output is the child's output; the child's failure is the step's.
    Cancelling the run cancels the child."""
    builder = current_builder()
    if builder is None:
        raise DefinitionError("wp.child is a step of a flow: call it in a @wp.flow body (a "
                              "machine state takes child= instead)")
    if not all(hasattr(definition, a) for a in ("name", "kind", "compile", "bind_input")):
        raise DefinitionError(f"wp.child takes a flow or a machine, not {definition!r}")
    return builder.add_child(definition, {} if input is None else input)
