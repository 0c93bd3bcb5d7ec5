"""What a driver is told: the run's persisted state (`RunFacts`) and what just happened.

Three things are called "event" in everyday speech; in the code each has its own name. A
*fact* (this module) is what the runtime tells a driver happened. A *signal* is a message
sent to one machine run (`Engine.send`, runtime/core/signals.py), offered to its driver as
the fact `SignalArrived`. A *topic event* is published on a topic for whoever subscribes
(`wp.emit`, runtime/core/deliveries.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class RunFacts(Protocol):
    """The persisted state of one run, read inside the deciding transaction."""

    @property
    def run_id(self) -> str: ...

    @property
    def params(self) -> dict[str, Any]:
        """The run's input, decoded once and shared by every transaction that drives the
        run: read it, never change it."""
        ...

    def now(self) -> float:
        """The database's clock, once per transaction."""
        ...

    def outputs(self, steps: Sequence[str]) -> dict[str, str | None]:
        """The JSON text outputs of ended steps (outputs recorded in this transaction
        included, without a read)."""
        ...

    def items(self, node: str) -> list[tuple[str, str | None, str | None]]:
        """(status, output, error) of each item of a fan-out, in order."""
        ...

    def first_failure(self) -> tuple[str, str | None] | None:
        """The first step of the run that failed for good, with its error."""
        ...

    def machine(self) -> tuple[str | None, str | None, int]:
        """A state machine's (current state, data as JSON text, transitions so far);
        (None, None, 0) before its first transition. `Transition` decisions made in this
        transaction are seen at once."""
        ...


@dataclass(frozen=True)
class Started:
    """A run was created; its `Driver.steps()` rows exist."""


@dataclass(frozen=True)
class StepSucceeded:
    step: str
    node: str
    kind: str


@dataclass(frozen=True)
class StepFailed:
    """A step ended for good without an output (out of attempts, rejected, failed by an
    operator, timed out in its queue). `error` is the step's error as stored (JSON text
    with `type` and `message`), when there is one: a front-end may route on it."""

    step: str
    node: str
    kind: str
    error: str | None = None


@dataclass(frozen=True)
class StepsFreed:
    """These pending steps now have every step they wait for ended: decide what they
    become (their counters reached zero through `Release`)."""

    steps: list[str]


@dataclass(frozen=True)
class ItemsEnded:
    """Every item of the fan-out `node` ended."""

    node: str


@dataclass(frozen=True)
class Settled:
    """Nothing of the run is open any more: decide how it ends."""


@dataclass(frozen=True)
class SignalArrived:
    """An event sent to the run (`Engine.send`) is open: stored as `seq`, with its name,
    payload (JSON text) and the sender's event id. Offered when it arrives and again after
    every transition until a decision takes it (`Transition(event=seq)`) or settles it
    (`Consume`); a driver that can do neither now (an action is running) returns none."""

    name: str
    payload: str
    seq: int = 0
    event_id: str | None = None


Fact = (Started | StepSucceeded | StepFailed | StepsFreed | ItemsEnded | Settled | SignalArrived)
