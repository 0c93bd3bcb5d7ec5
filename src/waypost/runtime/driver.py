"""The seam between front-ends and the runtime: facts in, decisions out.

A front-end (DAG flows today; state machines and event chains next) compiles a definition
to a `Driver`. The runtime owns everything that is the same for every front-end: the
transaction, the fences, leases, retries and backoff, escalation, retry budgets, dead
letters, timers, compensation chains and how a run ends. A driver owns only what its
front-end means: which steps a run has, what a step's input is, what follows when a step
ends, and what the run's output is.

The runtime calls `Driver.decide(facts, event)` inside the transaction that recorded the
event and applies every decision in that same transaction (see `advance.py`). A driver
holds no state of its own and does no I/O: what it needs of the run's persisted state it
reads through `RunFacts`, which the runtime loads lazily from the transaction.

A driver never raises. Whatever it cannot do with a run's data (a key missing from a
task's output, a template that no longer renders, an output it cannot decode) is a
`FailRun` decision naming the step and the reason. `decide` below is the runtime's
backstop for a driver that breaks that rule: the exception still becomes the run's
failure, never the worker's.

What a step needs at run time is its `StepPolicy`, which the runtime reads without knowing
which front-end made it.

Design history: before this seam the runtime walked DAG graphs itself (`advance.py`
imported the DAG driver, `view.py` the graph). A second front-end would have meant a
second copy of every fence and retry rule; now it means a second `Driver`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import codec
from ..retry import Backoff
from ..store.records import NewStep

# -- the step policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPolicy:
    """How the runtime runs, retries and watches one step, whatever front-end made it."""

    task: str
    max_attempts: int = 1
    backoff: Backoff = field(default_factory=Backoff)
    timeout: float | None = None
    heartbeat: float | None = None
    queue_timeout: float | None = None
    #: After every N failed attempts an operator is asked (`needs_attention`).
    escalate_after: int | None = None
    escalation_timeout: float | None = None
    on_escalation_timeout: str = "fail"
    #: (retries, per seconds) across every run of the task.
    retry_budget: tuple[int, float] | None = None
    uses: tuple[str, ...] = ()
    #: The task that undoes this step when its run fails (a saga), and its own policy.
    compensate: str | None = None
    compensate_policy: StepPolicy | None = None
    completes_externally: bool = False
    destructive: bool = False
    #: Waits (gates): what happens when nobody decides in time.
    on_timeout: str | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any], task: str) -> StepPolicy:
        """The policy of a step running `task` with a task's `options()` (as stored in a
        definition's body), whichever front-end stored them."""
        budget = options.get("retry_budget")
        undo = options.get("compensate_options")
        return cls(
            task=task, max_attempts=int(options.get("max_attempts", 1)),
            backoff=Backoff.from_json(options["backoff"]) if "backoff" in options else Backoff(),
            timeout=options.get("timeout"), heartbeat=options.get("heartbeat"),
            queue_timeout=options.get("queue_timeout"),
            escalate_after=options.get("escalate_after"),
            escalation_timeout=options.get("escalation_timeout"),
            on_escalation_timeout=options.get("on_escalation_timeout", "fail"),
            retry_budget=(int(budget[0]), float(budget[1])) if budget else None,
            uses=tuple(options.get("uses", ())),
            compensate=options.get("compensate"),
            compensate_policy=None if undo is None else cls.from_options(
                undo, options["compensate"]),
            completes_externally=bool(options.get("completes_externally")),
            destructive=bool(options.get("destructive")),
            on_timeout=options.get("on_timeout"))

    def undo(self) -> StepPolicy:
        """The policy a compensation step runs under: its undo task's own."""
        assert self.compensate_policy is not None
        return self.compensate_policy

    def new_step(self, name: str, node: str, kind: str, status: str, waiting_on: int,
                 input: str | None = None, checksum: str | None = None,
                 map_index: int | None = None) -> NewStep:
        return NewStep(name=name, node=node, task=self.task, kind=kind, status=status,
                       waiting_on=waiting_on, max_attempts=self.max_attempts,
                       timeout=self.timeout, input=input, input_checksum=checksum,
                       map_index=map_index, heartbeat=self.heartbeat,
                       queue_timeout=self.queue_timeout)


# -- facts ------------------------------------------------------------------------------------


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


# -- events: what just happened ------------------------------------------------------------------


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
class TimerFired:
    """Reserved for front-ends with their own timers (state-machine timeouts)."""

    step: str


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


@dataclass(frozen=True)
class ChildEnded:
    """Reserved (a child's end arrives as its step's `StepSucceeded` / `StepFailed`)."""

    step: str
    child_run: str
    succeeded: bool


Event = (Started | StepSucceeded | StepFailed | StepsFreed | ItemsEnded | Settled | TimerFired
         | SignalArrived | ChildEnded)

# -- decisions: what to do -------------------------------------------------------------------------


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
    #: The stored event (its seq) this transition takes.
    event: int | None = None
    #: Whether the new state takes events now (it waits): open events are offered to it.
    offers: bool = False


@dataclass(frozen=True)
class Consume:
    """An open event is settled without a transition: `ignored`, `unhandled` (recorded and
    shown) or `deferred` (offered again after the next transition)."""

    event: int
    status: str


#: Names of events waypost itself stores: nobody else may send one (or handle one, `on=`).
RESERVED_EVENTS = "waypost."
#: The event a `DecideLater` stores.
DECIDE_EVENT = RESERVED_EVENTS + "decide"


@dataclass(frozen=True)
class DecideLater:
    """What follows the end of `step` (of `kind`) needs user code this process lacks: a
    machine's guards, when `waypost skip` or `complete` ended the step from a shell, or a
    worker with another version of the class recorded it. It is kept as a pending event
    named DECIDE_EVENT, which a worker that has the code is offered (`SignalArrived`)."""

    step: str
    kind: str


@dataclass(frozen=True)
class Emit:
    """Reserved for event chains: publish an event on a topic."""

    topic: str
    payload: str


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
            | FinishRun | FailRun | Transition | Consume | Emit | StartChild | DecideLater)


class Driver(Protocol):
    """What a front-end implements. Every method is pure and must not raise."""

    kind: str

    def steps(self, params: dict[str, Any]) -> list[NewStep]:
        """The rows of a new run (their input may be filled already, status ready)."""
        ...

    def decide(self, facts: RunFacts, event: Event) -> list[Decision]:
        ...

    def policy(self, node: str, kind: str) -> StepPolicy:
        """The policy of a step made from `node` (kind `undo`: of its compensation)."""
        ...

    def policies(self) -> list[StepPolicy]:
        """The policies of every step that runs a task, compensations included (which
        tasks a worker must serve, which limits a run's steps use)."""
        ...

    def compensations(self) -> dict[str, str]:
        """Nodes whose succeeded steps are undone when the run fails, with the undo task."""
        ...

    def edges(self, node: str) -> tuple[list[str], list[str]]:
        """What a node's step waits for: (steps whose output it takes, steps it only
        follows). A resumed step waits again for those that have not succeeded."""
        ...

    def downstream(self, node: str) -> list[str]:
        """Every step that can start only after `node` succeeded (blocked when it failed,
        reopened when it is replayed)."""
        ...


def decide(driver: Driver, facts: RunFacts, event: Event) -> list[Decision]:
    """`driver.decide`, with the promise kept even by a driver that breaks it."""
    try:
        return driver.decide(facts, event)
    except Exception as exc:  # a driver's own failure is the run's, never the worker's
        where = getattr(event, "step", None) or getattr(event, "node", None)
        about = f" after step {where}" if where else ""
        return [FailRun({"type": "DriverError", "step": where,
                         "message": f"the {driver.kind} driver failed{about}: "
                                    f"{type(exc).__name__}: {exc}"})]


# -- kinds -------------------------------------------------------------------------------------

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


class Definition(Protocol):
    """What `Engine.start` takes: a flow, a machine, ... compiled once, outside any
    transaction (its body is user code)."""

    name: str
    kind: str

    def compile(self) -> tuple[str, str, Driver]:
        """(fingerprint, JSON body, driver); may run user code, so never inside a
        transaction."""
        ...

    def bind_input(self, data: Any) -> dict[str, Any]:
        ...

    @property
    def default_deadline(self) -> float | None:
        ...


def encode_call(args: list[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    """A step's input as every task is called with it (executor.py): canonical JSON text of
    `{"args": [...], "kwargs": {...}}` and its checksum. Front-ends build inputs with it;
    the runtime builds compensations' inputs and replays' patched inputs with it."""
    text = codec.dumps({"args": args, "kwargs": kwargs})
    return text, codec.checksum(text)
