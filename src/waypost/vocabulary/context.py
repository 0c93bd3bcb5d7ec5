"""What a running task may know about itself, and how it tells its worker it is alive."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .. import codec
from ..errors import Cancelled

_NOTHING = object()

#: Seconds: the interval a task that calls `ctx.heartbeat()` without having declared
#: `heartbeat=` is held to from its first beat (MISSION R15).
DEFAULT_HEARTBEAT = 30.0


class Heart:
    """Links one running attempt to its worker: beats go out (the worker writes the latest
    to the store), cancellation comes in. Safe to use from the task's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Any = _NOTHING
        self.cancelled = threading.Event()

    def beat(self, details: str) -> None:
        """Record a beat; `details` is already JSON text."""
        with self._lock:
            self._pending = details

    def take(self) -> str | None:
        """The latest beat's details (JSON text) since the last take, or None."""
        with self._lock:
            pending, self._pending = self._pending, _NOTHING
        return None if pending is _NOTHING else str(pending)


@dataclass(frozen=True)
class Context:
    """Handed to a task that declares a `ctx: wp.Context` parameter.

    `idempotency_key` is derived from the run and the step name, so it is the same on every
    retry of this step in this run and different for every other step and run: send it to
    external APIs so that a retried call is deduplicated on their side.
    """

    run_id: str
    step: str
    attempt: int
    idempotency_key: str
    #: For `completes_externally` tasks: hand it to the system that will finish the step.
    completion_token: str | None = None
    _heart: Heart | None = field(default=None, repr=False, compare=False)

    def heartbeat(self, details: Any = None) -> None:
        """Say this attempt is alive (JSON `details` are stored and shown). Raises
        `wp.Cancelled` once the attempt has been cancelled."""
        text = codec.dumps(details)  # refuse what could not be stored, here, in the task
        if self._heart is None:
            return
        self._heart.beat(text)
        if self._heart.cancelled.is_set():
            raise Cancelled(f"attempt {self.attempt} of step {self.step} was cancelled")

    @property
    def cancelled(self) -> bool:
        return self._heart is not None and self._heart.cancelled.is_set()
