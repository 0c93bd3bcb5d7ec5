"""What a driver answers: the decisions the runtime applies in the deciding transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import codec
from ...store.records import NewStep


@dataclass(frozen=True)
class Insert:
    """New step rows (ready or pending), e.g. a state machine's next state."""

    steps: list[NewStep]


@dataclass(frozen=True)
class MakeReady:
    step: str
    input: str
    checksum: str


@dataclass(frozen=True)
class WaitUntil:
    """The step waits, holding no worker, until `due` (None: until someone decides)."""

    step: str
    due: float | None


@dataclass(frozen=True)
class AwaitEvent:
    """The step waits, holding no worker, for an event of `topic` whose payload holds
    `match` (paths to values; {} takes any), emitted since the run was created, before
    the wait started or after; until `due` (None: for ever), then it times out."""

    step: str
    topic: str
    match: dict[str, Any]
    due: float | None


@dataclass(frozen=True)
class FanOut:
    """The step becomes a parent of `items`, which are inserted ready; it ends when they
    have (`ItemsEnded`). With no items it ends at once."""

    step: str
    items: list[NewStep]


@dataclass(frozen=True)
class Release:
    """One step each of `steps` waits for has ended; the runtime answers `StepsFreed`
    with those that wait for nothing more."""

    steps: list[str]


@dataclass(frozen=True)
class Block:
    """These pending steps can never start (something they need failed)."""

    steps: list[str]


@dataclass(frozen=True)
class EndStep:
    """A step that runs no task ends here (a gathered fan-out, an input that cannot be
    built). A failed one is answered with `StepFailed`, a succeeded one with
    `StepSucceeded`."""

    step: str
    succeeded: bool
    output: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class FinishRun:
    output: str


@dataclass(frozen=True)
class FailRun:
    """The run fails: at once when steps are still open (they are cancelled), or as its
    end. Succeeded steps with a compensation are undone first."""

    error: dict[str, Any]


def failed_by(step: str, error: str | None) -> FailRun:
    """The run fails with its first failed step's error (stored JSON text, or none)."""
    try:
        detail = (codec.loads(error) or {}) if error else {}
    except (ValueError, RecursionError):
        detail = {}
    return FailRun({"step": step, "type": detail.get("type"), "message": detail.get("message")})


@dataclass(frozen=True)
class Transition:
    """A state machine moves to `to` with `data` (JSON text): stored on the run and kept
    in its history with the trigger (`done`, `error`, `event`, `timer`, `start`), the
    event id if any, and the data before. `handles`: the failed step whose failure this
    transition routes, which therefore leaves no dead letter."""

    to: str
    data: str
    trigger: str
    event_id: str | None = None
    handles: str | None = None
    #: The stored signal (its seq) this transition takes.
    event: int | None = None
    #: Whether the new state takes signals now (it waits): open signals are offered to it.
    offers: bool = False


@dataclass(frozen=True)
class Consume:
    """An open signal is settled without a transition: `ignored`, `unhandled` (recorded and
    shown) or `deferred` (offered again after the next transition)."""

    event: int
    status: str


#: Names of signals waypost itself stores: nobody else may send one (or handle one, `on=`).
RESERVED_EVENTS = "waypost."
#: The signal a `DecideLater` stores.
DECIDE_EVENT = RESERVED_EVENTS + "decide"


@dataclass(frozen=True)
class DecideLater:
    """What follows the end of `step` (of `kind`) needs user code this process lacks: a
    machine's guards, when `waypost skip` or `complete` ended the step from a shell, or a
    worker with another version of the class recorded it. It is kept as a pending signal
    named DECIDE_EVENT, which a worker that has the code is offered (`SignalArrived`)."""

    step: str
    kind: str


@dataclass(frozen=True)
class StartChild:
    """Start a run of the definition `definition` (a fingerprint, named `name`, stored
    when the parent started) with `input` (JSON text) for `step`, a pending step that
    then waits for it, holding no worker: the child's output is the step's output, its
    failure the step's failure (`StepSucceeded` / `StepFailed` of kind `child`)."""

    step: str
    definition: str
    input: str
    name: str = ""


Decision = (Insert | MakeReady | WaitUntil | AwaitEvent | FanOut | Release | Block | EndStep
            | FinishRun | FailRun | Transition | Consume | StartChild | DecideLater)
