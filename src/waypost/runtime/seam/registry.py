"""What this process's code declares, as the runtime needs it: a driver for each kind of
stored definition, and the definitions a worker registers, subscribes or schedules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .driver import Driver

#: Driver factories by definition kind, filled in by the front-ends when they are imported:
#: a definition is stored as (kind, JSON body), and a run is driven by its stored body.
_KINDS: dict[str, Callable[[str], Driver]] = {}


def register_kind(kind: str, load: Callable[[str], Driver]) -> None:
    _KINDS[kind] = load


#: Definitions declared in this process, by name: (kind, fingerprint). A worker registers
#: them, so `show` can tell when a live worker's code differs from a run's definition.
_LOCAL: dict[str, tuple[str, str]] = {}


def declare_definition(kind: str, name: str, fingerprint: str) -> None:
    _LOCAL[name] = (kind, fingerprint)


def local_definitions() -> dict[str, str]:
    """{name: fingerprint} of the definitions this process's code declares."""
    return {name: fingerprint for name, (_, fingerprint) in sorted(_LOCAL.items())}


#: Definitions declared in this process that take events (handlers, and flows and machines
#: with a `trigger`), by name: a worker stores their subscriptions when it starts.
_SUBSCRIBERS: dict[str, Any] = {}


def declare_subscriber(definition: Any) -> None:
    """`definition` (a `Definition` with a topic `pattern`) takes the events matching it."""
    _SUBSCRIBERS[definition.name] = definition


def local_subscribers() -> list[Any]:
    return list(_SUBSCRIBERS.values())


#: Definitions declared in this process that may have a schedule, by name.
_SCHEDULED: dict[str, Any] = {}


def declare_schedule(definition: Any) -> None:
    """`definition` (a `Definition` whose `schedule` is a spec, schedule.py, or None)
    starts at due times, or (None) no longer does: a schedule taken out of the code must
    stop firing."""
    _SCHEDULED[definition.name] = definition


def local_schedules() -> list[Any]:
    return [d for d in _SCHEDULED.values() if d.schedule is not None]


def unscheduled() -> list[str]:
    """Definitions this process has that have no schedule (any stored one is stale)."""
    return sorted(name for name, d in _SCHEDULED.items() if d.schedule is None)


def load_driver(kind: str, body: str) -> Driver:
    load = _KINDS.get(kind)
    if load is None:
        known = ", ".join(sorted(_KINDS)) or "none"
        raise LookupError(f"no front-end for definitions of kind {kind!r} is loaded "
                          f"(known: {known})")
    return load(body)
