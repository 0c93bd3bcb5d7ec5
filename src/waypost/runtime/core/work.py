"""One unit of work: a transaction's worth of advancing runs, applied once at its end.

Every writer that moves a run (a worker's outcomes, the sweeper, `start`, `resume`,
`cancel`, a completion token, a gate's decision, an operator's answer, a replay) does the
same three things inside its transaction: load the runs it touches, apply what happened
and what their drivers decide, then settle: gather fan-outs whose items all ended, count
open steps, end the runs that have none left, and wake idle workers. `Work` is that
sequence, written once; `Advancer.work(tx)` opens one and closes it on success.

The modules that handle one concern inside the transaction (children, retries, waits for
topic events, deliveries, reopening) never call back into the `Advancer`: what they cause
(a fact for a run's driver, a step that ended, a run to fail) they put on the work's
`agenda`, and the `Advancer` carries it out as soon as they return, in the order it was
put there. So a step's outcome travels one way: from the door that recorded it, through
the advancer, out to the concern it touches, and back to the advancer only through the
agenda.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...store.protocol import Tx
from ...store.records import HeldStep, NewStep, SubscriptionRow
from ..seam import Driver, Fact
from .heads import Heads


def step_key(run_id: str, step: str) -> str:
    """A step's idempotency key: the same on every attempt, unique across runs."""
    return hashlib.sha256(f"{run_id}/{step}".encode()).hexdigest()[:32]


def keys(run_id: str, steps: list[NewStep]) -> list[str]:
    return [step_key(run_id, s.name) for s in steps]


@dataclass
class RunState:
    """A run as its driver sees it (`RunFacts`), read lazily in the work's transaction.
    `broken` says why the run cannot be driven at all (its definition or input no longer
    loads): the runtime then fails it instead of failing the worker."""

    run_id: str
    driver: Driver | None
    params: dict[str, Any]
    work: Work
    broken: dict[str, Any] | None = None
    id: str = field(init=False)  # the runtime's short name for run_id (a field: it is hot)

    def __post_init__(self) -> None:
        self.id = self.run_id

    def now(self) -> float:
        return self.work.now()

    def outputs(self, steps: Sequence[str]) -> dict[str, str | None]:
        known = self.work.known
        found = {s: known[(self.run_id, s)] for s in steps if (self.run_id, s) in known}
        if len(found) < len(steps):
            found.update(self.work.tx.outputs(self.run_id, [s for s in steps if s not in found]))
        return found

    def items(self, node: str) -> list[tuple[str, str | None, str | None]]:
        return self.work.tx.map_items(self.run_id, node)

    def first_failure(self) -> tuple[str, str | None] | None:
        return self.work.tx.first_failure(self.run_id)

    def machine(self) -> tuple[str | None, str | None, int]:
        found = self.work.machines.get(self.run_id)
        if found is None:
            found = self.work.machines[self.run_id] = self.work.tx.machine(self.run_id)
        return found


@dataclass(frozen=True)
class Tell:
    """Tell a run's driver a fact."""

    run_id: str
    fact: Fact


@dataclass(frozen=True)
class StepEnded:
    """A step ended for good (succeeded with `output`, or failed with `error`), by a
    fenced write already made: its run moves on."""

    held: HeldStep
    output: str | None = None
    error: str | None = None
    succeeded: bool = True


@dataclass(frozen=True)
class StepDead:
    """A step is out of attempts: it fails (unless a fenced write failed it already,
    `failed`) and leaves a dead letter."""

    held: HeldStep
    error: str
    failed: bool = False


@dataclass(frozen=True)
class FailRunNow:
    """A run fails now, its open steps cancelled."""

    run_id: str
    error: dict[str, Any]


@dataclass(frozen=True)
class Reopen:
    """A failed or cancelled run is reopened (a child whose parent's step was reopened)."""

    run_id: str


Agendum = Tell | StepEnded | StepDead | FailRunNow | Reopen


class Settles(Protocol):
    """Whoever opens units of work and carries out their agendas (the `Advancer`)."""

    def settle(self, w: Work, notify: bool = True) -> None: ...

    def work(self, tx: Tx, notify: bool = True) -> Work: ...


@dataclass
class Work:
    tx: Tx
    heads: Heads
    settler: Settles
    #: What the concerns caused, for the advancer to carry out, oldest first.
    agenda: deque[Agendum] = field(default_factory=deque)
    open_delta: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    runs: dict[str, RunState] = field(default_factory=dict)
    made_ready: int = 0
    # Items of fan-outs that ended here, counted per (run, node) and applied in one
    # statement per node: a fan-out then costs one parent update per batch, not per item.
    items_ended: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: Outputs recorded in this transaction, by (run, step): a successor whose inputs are
    #: all here needs no read (in a chain, that is every step).
    known: dict[tuple[str, str], str | None] = field(default_factory=dict)
    #: Runs in which a compensation step ended here, and whether all that ended succeeded.
    undone: dict[str, bool] = field(default_factory=dict)
    #: Machines' (state, data, transitions) as this transaction left them.
    machines: dict[str, tuple[str | None, str | None, int]] = field(default_factory=dict)
    #: Failed steps whose failure a machine routed to a state: no dead letter for them.
    handled: set[tuple[str, str]] = field(default_factory=set)
    #: Machines that moved here: their open signals are offered to the new state.
    offer: set[str] = field(default_factory=set)
    #: Runs ended early here (failed by their driver, cancelled): nothing more is decided.
    ended: set[str] = field(default_factory=set)
    #: Machines' open signals as this transaction left them, once read (under the run's
    #: lock, which every writer of a run's signals holds): a machine offered its signals
    #: again after a transition needs no second read.
    open_signals: dict[str, list[tuple[int, str, str | None, str, str]]] = field(
        default_factory=dict)
    #: Signals settled here, by seq: (status, state that settled them).
    settled: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    #: Runs known to be `running` already: a waiting visit need not mark them so again.
    running: set[str] = field(default_factory=set)
    #: Subscriptions, once read in this transaction (under the topic gate).
    subscriptions: list[SubscriptionRow] | None = None
    #: The field lists waited on per topic, once read in this transaction.
    wait_shapes: dict[str, list[str]] = field(default_factory=dict)
    #: Runs' correlation ids, for the events their steps emit.
    correlations: dict[str, str] = field(default_factory=dict)
    #: Whether settling wakes idle workers (a worker about to claim itself passes False).
    notify: bool = True
    _now: float | None = None

    def now(self) -> float:
        if self._now is None:
            self._now = self.tx.now()
        return self._now

    def run(self, run_id: str) -> RunState:
        """A run's state for its driver. A run whose definition or input cannot be loaded
        any more is `broken`, to be failed: never an exception in a worker."""
        state = self.runs.get(run_id)
        if state is None:
            driver, params, broken = self.heads.load(self.tx, run_id)
            state = self.runs[run_id] = RunState(run_id, driver, params, self, broken)
        return state

    def tell(self, run_id: str, fact: Fact) -> None:
        self.agenda.append(Tell(run_id, fact))

    def step_ended(self, held: HeldStep, output: str | None = None,
                   error: str | None = None, succeeded: bool = True) -> None:
        self.agenda.append(StepEnded(held, output, error, succeeded))

    def step_dead(self, held: HeldStep, error: str, failed: bool = False) -> None:
        self.agenda.append(StepDead(held, error, failed))

    def fail_run(self, run_id: str, error: dict[str, Any]) -> None:
        self.agenda.append(FailRunNow(run_id, error))

    def reopen(self, run_id: str) -> None:
        self.agenda.append(Reopen(run_id))

    # A plain context manager, not @contextmanager: this is on every step's path.
    def __enter__(self) -> Work:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:  # a block that raised commits nothing: nothing to settle
            self.settler.settle(self, self.notify)
