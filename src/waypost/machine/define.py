"""`class Order(wp.Machine)`: an explicit state machine, declared as one class.

Each class attribute that is a `wp.State` or a `wp.Final` is a state, named by the
attribute. A state's action is a `@wp.task` with every option it has (retries, backoff,
timeouts, heartbeats, isolation, limits, compensation), run as a durable step with the
machine's data as its one argument; what it returns is merged into the data (a dict) or
kept under the state's name (anything else but None). What follows is in the same place:
`done` (where to go when the action succeeded; a list of `wp.to(state, when=guard)` tried
in order, the last one a default) and `errors` (exception type, or its name, to the state
that handles it; a failure no route names fails the run and is kept as a dead letter).

The class is compiled once to a JSON body (states, tasks, options, routes), which is what
a run stores and resumes from. Guards are code: a run evaluates them from the class of the
same name, and only while that class still compiles to the body the run started with.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from .. import codec
from ..errors import DefinitionError, InputError
from ..masking import declare
from ..moments import time_of_day
from ..registry import registry
from ..runtime.seam import RESERVED_EVENTS, register_kind
from ..vocabulary.match import check_paths
from ..vocabulary.task import Task
from ..vocabulary.topics import check_pattern, check_topic
from .driver import Guard, MachineDriver

#: A guard: a pure function of the machine's data and what fired the transition (the
#: action's result, or later an event's payload). It must not change either.

def declared_machine(name: str) -> type[Machine] | None:
    """The registry's machine of that name, typed: a run's guards are its class's code."""
    found = registry.definition(Machine.kind, name)
    return found if isinstance(found, type) and issubclass(found, Machine) else None


@dataclass(frozen=True)
class To:
    """A transition to `state`, taken when `when` (if any) holds."""

    state: str
    when: Guard | None = None


def to(state: str, *, when: Guard | None = None) -> To:
    """`wp.to("ship", when=lambda data, result: result["paid"])`."""
    return To(state, when)


Targets = str | To | Iterable[str | To]


def _as_routes(targets: Targets | None) -> list[To]:
    if targets is None:
        return []
    if isinstance(targets, str | To):
        return [targets if isinstance(targets, To) else To(targets)]
    return [t if isinstance(t, To) else To(t) for t in targets]


#: What a waiting state does with an event it has no transition for.
UNHANDLED = ("error", "ignore", "defer")


@dataclass
class State:
    """A state that runs `action` on entry and moves on by its outcome (`done`, `errors`),
    or, without an action, waits, holding no worker, for an event named in `on` or for
    its timer (`after`, then go to `then`). An event a waiting state has no transition for
    is, per `unhandled`: `error` (kept as unhandled and shown), `ignore`, or `defer` (kept
    and offered again to the next state). Events that arrive while an action runs wait
    for its transition."""

    action: Task[..., Any] | None = None
    done: Targets | None = None
    errors: dict[type[BaseException] | str, str] = field(default_factory=dict)
    #: Overrides of the action's own retry policy, for this state only.
    retries: int | None = None
    on: dict[str, Targets] = field(default_factory=dict)
    #: Instead of an action: a flow or machine started as a child run with the data as its
    #: input; the state waits for it (holding no worker) and moves on by its outcome.
    child: Any = None
    after: timedelta | float | None = None
    #: A time of day as `wp.sleep_until` takes it ("09:00 Europe/Paris"): the next one.
    until: str | None = None
    then: str | None = None
    unhandled: str = "error"


@dataclass
class Final:
    """A state where the machine ends: succeeded (its output is the data) or failed."""

    failed: bool = False


def _error_name(kind: type[BaseException] | str) -> str:
    return kind if isinstance(kind, str) else kind.__name__


class Machine:
    """Subclass it to declare a machine; `engine.start(MyMachine, data)` runs one."""

    kind: ClassVar[str] = "machine"
    name: ClassVar[str]
    initial: ClassVar[str]
    default_deadline: ClassVar[float | None] = None
    #: The events senders send to it, if declared: `waypost check` then finds those no
    #: state handles, and `on=` names no sender sends (a typo).
    events: ClassVar[tuple[str, ...] | None] = None
    #: Where a failure goes that no state's `errors=` routes (a dead end): None fails the
    #: run (and keeps a dead letter), a state name handles it there.
    dead_end: ClassVar[str | None] = None
    #: A topic pattern: every matching event starts a run, its payload the data.
    trigger: ClassVar[str | None] = None
    #: Topics whose events a run takes as its own events (named by the topic, so a state's
    #: `on=` moves on them): {topic: {payload field: data field}}, an event going to the
    #: open runs whose data holds, at those fields, the values its payload holds.
    topics: ClassVar[dict[str, dict[str, str]]] = {}
    #: Fields of its data (and events' payloads) never shown (masking.py).
    secret: ClassVar[tuple[str, ...]] = ()
    pattern: ClassVar[str]
    #: Filled in when the class is declared.
    states: ClassVar[dict[str, State | Final]]
    guards: ClassVar[list[Guard]]
    #: (fingerprint, name, kind, body) of every definition its states may start.
    children: ClassVar[list[tuple[str, str, str, str]]]
    body: ClassVar[str]
    fingerprint: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = vars(cls).get("name") or f"{cls.__module__}:{cls.__qualname__}"
        if cls.trigger is not None:
            check_pattern(cls.trigger, f"machine {cls.name}: trigger")
        declare(cls.secret, f"machine {cls.name}")
        cls.states = {}  # a subclass inherits its bases' states and may replace some
        for base in reversed(cls.__mro__):
            cls.states.update({k: v for k, v in vars(base).items()
                               if isinstance(v, State | Final)})
        cls.guards = []
        cls.children = []
        cls.body = json.dumps(_compile(cls), sort_keys=True, separators=(",", ":"))
        cls.fingerprint = "sha256:" + hashlib.sha256(cls.body.encode()).hexdigest()
        registry.declare_definition(cls, cls.fingerprint)
        if cls.trigger is not None:
            cls.pattern = cls.trigger
            registry.declare_subscriber(cls)

    def __init__(self) -> None:
        raise DefinitionError(f"start machine {self.name} with engine.start(), not by "
                              "creating an instance")

    @classmethod
    def compile(cls) -> tuple[str, str, MachineDriver]:
        driver = MachineDriver(codec.loads(cls.body), cls.guards)
        driver.children = cls.children
        return cls.fingerprint, cls.body, driver

    @classmethod
    def bind_input(cls, data: Any) -> dict[str, Any]:
        """A machine starts from its data: a JSON object."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise InputError(f"machine {cls.name} starts from a JSON object of its data, "
                             f"not {type(data).__name__}")
        try:
            codec.dumps(data, codec.MAX_DEPTH)
        except TypeError as exc:
            raise InputError(f"the data of machine {cls.name} must be JSON: {exc}") from None
        return data


def _compile(cls: type[Machine]) -> dict[str, Any]:
    """The machine's JSON body; guards are numbered in `cls.guards`. Refuses what could
    never run: no states, an unknown initial or target state, an action that is not a
    task or does not take the data."""
    where = f"machine {cls.name}"
    if not cls.states:
        raise DefinitionError(f"{where} declares no state (class attributes wp.State(...) "
                              "or wp.Final())")
    initial = getattr(cls, "initial", None)
    if initial not in cls.states:
        raise DefinitionError(f"{where}: initial = {initial!r} is not one of its states "
                              f"({', '.join(cls.states)})")
    states: dict[str, Any] = {}
    for name, state in cls.states.items():
        if isinstance(state, Final):
            states[name] = {"final": "failed" if state.failed else "succeeded"}
            continue
        here = f"{where}, state {name}"
        if state.child is not None:
            states[name] = _child(cls, state, here)
            continue
        if state.action is None:
            states[name] = _waiting(cls, name, state, here)
            continue
        if not isinstance(state.action, Task):
            raise DefinitionError(f"{here}: the action must be a @wp.task")
        if state.on or state.after is not None or state.then is not None:
            raise DefinitionError(f"{here}: a state with an action moves on by its outcome "
                                  "(done=, errors=); events and timers belong to a state "
                                  "without an action, which waits for them")
        state.action._check_call((None,), {})
        options = state.action.options()
        if state.retries is not None:
            if state.retries < 0:
                raise DefinitionError(f"{here}: retries must be >= 0")
            options["max_attempts"] = state.retries + 1
        done = _compile_routes(cls, state.done, f"{here}: done")
        errors = []
        for kind, target in state.errors.items():
            if target not in cls.states:
                raise DefinitionError(f"{here}: errors send {_error_name(kind)} to "
                                      f"{target!r}, which is not a state of the machine")
            errors.append([_error_name(kind), target])
        states[name] = {"task": state.action.name, "options": options, "done": done,
                        "errors": errors}
    body: dict[str, Any] = {"machine": cls.name, "initial": initial, "states": states}
    if cls.dead_end is not None:
        if cls.dead_end not in cls.states:
            raise DefinitionError(f"{where}: dead_end = {cls.dead_end!r} is not one of its "
                                  "states")
        body["dead_end"] = cls.dead_end
    if cls.events is not None:
        body["events"] = sorted(cls.events)
    if cls.topics:
        body["topics"] = _compile_topics(cls, where)
    return body


def _compile_topics(cls: type[Machine], where: str) -> dict[str, dict[str, str]]:
    if not isinstance(cls.topics, dict):
        raise DefinitionError(f"{where}: topics is a dict of topic to {{payload field: data "
                              f"field}}, not {type(cls.topics).__name__}")
    handled = {e for s in cls.states.values() if isinstance(s, State) for e in s.on}
    compiled = {}
    for topic, fields in cls.topics.items():
        try:
            check_topic(topic)
        except InputError as exc:
            raise DefinitionError(f"{where}: topics: {exc}") from None
        if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
            raise DefinitionError(f"{where}: topics[{topic!r}] maps payload fields to data "
                                  f"fields (both strings), not {fields!r:.80}")
        check_paths(fields, f"{where}: topics[{topic!r}]", DefinitionError)
        check_paths({v: None for v in fields.values()}, f"{where}: topics[{topic!r}]",
                    DefinitionError)
        if topic not in handled:
            raise DefinitionError(f"{where}: it takes events of topic {topic!r}, but no "
                                  f"state has on={{{topic!r}: ...}}")
        compiled[topic] = dict(sorted(fields.items()))
    return compiled


def _child(cls: type[Machine], state: State, here: str) -> dict[str, Any]:
    """A state that starts a child run. Its definition is compiled now (a flow's body runs
    once, here) and stored when a run of this machine starts."""
    if state.action is not None or state.on or state.after is not None or state.until:
        raise DefinitionError(f"{here}: a state runs an action or a child, and a child state "
                              "moves on by the child's outcome (done=, errors=)")
    child = state.child
    if not all(hasattr(child, a) for a in ("name", "kind", "compile", "bind_input")):
        raise DefinitionError(f"{here}: child= takes a flow or a machine, not {child!r}")
    fingerprint, body, driver = child.compile()
    cls.children.append((fingerprint, child.name, child.kind, body))
    cls.children += getattr(driver, "children", [])
    return {"child": {"definition": fingerprint, "name": child.name, "kind": child.kind},
            "done": _compile_routes(cls, state.done, f"{here}: done"),
            "errors": [[_error_name(k), t] for k, t in state.errors.items()]}


def _compile_routes(cls: type[Machine], targets: Targets | None,
                    here: str) -> list[dict[str, Any]]:
    routes = []
    for route in _as_routes(targets):
        if route.state not in cls.states:
            raise DefinitionError(f"{here} goes to {route.state!r}, which is not a state of "
                                  "the machine")
        guard = None
        if route.when is not None:
            guard = len(cls.guards)
            cls.guards.append(route.when)
        routes.append({"to": route.state, "guard": guard})
    return routes


def _waiting(cls: type[Machine], name: str, state: State, here: str) -> dict[str, Any]:
    if state.done is not None or state.errors or state.retries is not None:
        raise DefinitionError(f"{here}: done=, errors= and retries= need an action")
    if state.unhandled not in UNHANDLED:
        raise DefinitionError(f"{here}: unhandled is one of {', '.join(UNHANDLED)}, not "
                              f"{state.unhandled!r}")
    if state.after is not None and state.until is not None:
        raise DefinitionError(f"{here}: a timer is after= or until=, not both")
    timed = state.after is not None or state.until is not None
    if timed != (state.then is not None):
        raise DefinitionError(f"{here}: a timer needs after= (or until=) and then=")
    until = None
    if state.until is not None:
        until = time_of_day(state.until, f"{here}: until")
        if until is None:
            raise DefinitionError(f"{here}: until takes a time of day such as \"09:00 "
                                  f"Europe/Paris\", not {state.until!r}")
    after = state.after.total_seconds() if isinstance(state.after, timedelta) else state.after
    if after is not None and after < 0:
        raise DefinitionError(f"{here}: after= cannot be negative")
    if state.then is not None and state.then not in cls.states:
        raise DefinitionError(f"{here}: then goes to {state.then!r}, which is not a state "
                              "of the machine")
    if not state.on and not timed:
        raise DefinitionError(f"{here}: a state without an action waits for an event (on=) "
                              "or a timer (after=, then=); this one has neither")
    for event in state.on:
        if not isinstance(event, str) or not event or event.startswith(RESERVED_EVENTS):
            raise DefinitionError(f"{here}: on= names events by non-empty strings not "
                                  f"starting {RESERVED_EVENTS!r} (waypost's own), not "
                                  f"{event!r}")
    on = {event: _compile_routes(cls, targets, f"{here}: on {event!r}")
          for event, targets in state.on.items()}
    return {"on": on, "after": after, "until": until, "then": state.then,
            "unhandled": state.unhandled}


def _driver_of(text: str) -> MachineDriver:
    """A stored machine's driver, with the guards of this process's class of that name
    when it compiles to the very same body (a run's guards are its own version's code)."""
    body = codec.loads(text)
    found = declared_machine(body["machine"])
    return MachineDriver(body, found.guards if found is not None and found.body == text else None)


register_kind("machine", _driver_of)
