"""`wp.emit` inside a step: the events an attempt emits are kept with its outcome.

They are stored in the transaction that records the attempt's success (an outbox), so an
event never comes from an attempt whose outcome was not recorded, and a step whose
outcome was recorded never loses one. A failed attempt's events are dropped with it; the
retry emits its own.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import InputError
from .topics import Emitted, emitted

_OUTBOX: contextvars.ContextVar[list[Emitted] | None] = contextvars.ContextVar(
    "waypost_outbox", default=None)


@contextmanager
def outbox() -> Iterator[list[Emitted]]:
    """What the attempt run inside the block emits (the executor wraps every body)."""
    box: list[Emitted] = []
    token = _OUTBOX.set(box)
    try:
        yield box
    finally:
        _OUTBOX.reset(token)


def emit(topic: str, payload: Any = None, *, key: str | None = None,
         id: str | None = None) -> str:
    """Publish an event from inside a task, handler or machine action: stored with the
    step's outcome, so only if that attempt's success is recorded. Events with the same
    `key` reach each handler in order; with an `id`, emitting again stores nothing.
    Returns the event's id. Outside a step, use `engine.emit`."""
    box = _OUTBOX.get()
    if box is None:
        raise InputError("wp.emit publishes from inside a task, handler or machine action "
                         "(with that step's outcome); from other code use engine.emit(...)")
    event = emitted(topic, payload, key, id)
    box.append(event)
    return event.id
