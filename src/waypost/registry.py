"""What this process's code declares, in one place: its tasks, limits and definitions, the
definitions that take events or run on a schedule, how each front-end's stored definitions
are loaded back, and the field names declared secret.

Declaring happens as modules are imported, from every layer (the vocabulary, masking, the
front-ends); reading happens in the runtime, the worker and the API. One object, rather
than a dict beside each declaring module, is one thing to read, to reason about and, in a
test, to inspect.

It sits at the ground level, importing nothing of waypost, because the lowest modules
that declare (vocabulary/task.py, masking.py) must reach it. So it cannot name the types
it holds: it types them by the small protocols below (what it reads of them itself), and
the layers that know the real types narrow what they look up (the seam's `load_driver`,
vocabulary/task.py's `registered_tasks`, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol


class Named(Protocol):
    @property
    def name(self) -> str: ...


class Definition(Named, Protocol):
    """A flow, a machine or a handler, as far as the runtime reads it without its
    front-end (runtime/seam/driver.py has the full contract)."""

    @property
    def kind(self) -> str: ...

    def compile(self) -> tuple[str, str, Any]: ...

    def bind_input(self, data: Any) -> Any: ...


class Subscriber(Definition, Protocol):
    @property
    def pattern(self) -> str:
        """The topic pattern of the events that start its runs."""
        ...


class Schedulable(Definition, Protocol):
    @property
    def schedule(self) -> dict[str, Any] | None:
        """Its schedule spec (vocabulary/schedule.py), or None: a definition whose schedule
        was taken out of the code must stop firing, so it is kept, without one."""
        ...


class Registry:
    """Everything is kept by name, and a name declared again replaces what it named: a
    module imported twice (as `__main__` and by name) declares the same things twice."""

    def __init__(self) -> None:
        self._tasks: dict[str, Named] = {}
        self._limits: dict[str, Named] = {}
        #: By kind (the front-end's: "dag", "machine", "handler"), then by name.
        self._definitions: dict[str, dict[str, Definition]] = {}
        #: Of the definitions whose fingerprint is known when declared: a worker registers
        #: them, so `show` can tell when a live worker's code differs from a run's.
        self._fingerprints: dict[str, str] = {}
        self._subscribers: dict[str, Subscriber] = {}
        #: The subscribers whose deliveries bind their input as `engine.start` would: known
        #: only once compiled, which is user code, so recorded outside any transaction.
        self._input_binders: dict[str, Subscriber] = {}
        self._schedulable: dict[str, Schedulable] = {}
        #: A definition is stored as (kind, JSON body), and a run is driven by its stored
        #: body: each front-end, once imported, loads the bodies of its kind.
        self._loaders: dict[str, Callable[[str], object]] = {}
        #: Normalised by masking.py, which alone decides what a secret name is.
        self._secrets: set[str] = set()

    # -- the vocabulary ---------------------------------------------------------------------
    def declare_task(self, task: Named) -> None:
        self._tasks[task.name] = task

    def tasks(self) -> Mapping[str, Named]:
        return MappingProxyType(self._tasks)

    def declare_limit(self, limit: Named) -> None:
        self._limits[limit.name] = limit

    def limit(self, name: str) -> Named | None:
        return self._limits.get(name)

    def declare_secrets(self, names: Iterable[str]) -> None:
        self._secrets.update(names)

    def declares_secret(self, name: str) -> bool:
        return name in self._secrets

    # -- definitions ------------------------------------------------------------------------
    def declare_definition(self, definition: Definition, fingerprint: str | None = None) -> None:
        """`fingerprint` is given by front-ends whose definitions compile when declared (a
        flow's graph is built on first use, so it has none here)."""
        self._definitions.setdefault(definition.kind, {})[definition.name] = definition
        if fingerprint is not None:
            self._fingerprints[definition.name] = fingerprint

    def definition(self, kind: str, name: str) -> Definition | None:
        return self._definitions.get(kind, {}).get(name)

    def definitions(self, *kinds: str) -> dict[str, Definition]:
        """Of those kinds, by name; where two share a name, the later kind's wins."""
        return {name: d for kind in kinds for name, d in self._definitions.get(kind, {}).items()}

    def fingerprints(self) -> dict[str, str]:
        return dict(sorted(self._fingerprints.items()))

    def declare_subscriber(self, definition: Subscriber) -> None:
        """A worker stores the subscriptions of the subscribers it has when it starts."""
        self._subscribers[definition.name] = definition

    def subscribers(self) -> list[Subscriber]:
        return list(self._subscribers.values())

    def keep_input_binders(self, definitions: Iterable[Subscriber]) -> None:
        """They replace those kept before: what was compiled last is what a worker has."""
        self._input_binders = {d.name: d for d in definitions}

    def input_binder(self, name: str) -> Subscriber | None:
        return self._input_binders.get(name)

    def declare_schedule(self, definition: Schedulable) -> None:
        self._schedulable[definition.name] = definition

    def schedules(self) -> list[Schedulable]:
        return [d for d in self._schedulable.values() if d.schedule is not None]

    def unscheduled(self) -> list[str]:
        """Any stored schedule of these is stale."""
        return sorted(name for name, d in self._schedulable.items() if d.schedule is None)

    # -- loading stored definitions ---------------------------------------------------------
    def declare_loader(self, kind: str, load: Callable[[str], object]) -> None:
        self._loaders[kind] = load

    def load(self, kind: str, body: str) -> object:
        load = self._loaders.get(kind)
        if load is None:
            known = ", ".join(sorted(self._loaders)) or "none"
            raise LookupError(f"no front-end for definitions of kind {kind!r} is loaded "
                              f"(known: {known})")
        return load(body)


#: The one registry of this process.
registry = Registry()
