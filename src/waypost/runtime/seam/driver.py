"""The seam between front-ends and the runtime: facts in, decisions out.

A front-end (dag/, machine/, chains/) compiles a definition to a `Driver`. The runtime
owns everything that is the same for every front-end: the transaction, the fences,
leases, retries and backoff, escalation, retry budgets, dead letters, timers,
compensation chains and how a run ends. A driver owns only what its
front-end means: which steps a run has, what a step's input is, what follows when a step
ends, and what the run's output is.

The runtime calls `Driver.decide(facts, fact)` inside the transaction that recorded the
fact and applies every decision in that same transaction (see runtime/core/advance.py). A driver
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

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ...store.records import NewStep
from .decisions import Decision, FailRun
from .facts import Fact, RunFacts
from .policy import StepPolicy


class Driver(Protocol):
    """What a front-end implements. Every method is pure and must not raise.

    What the runtime must treat differently from one definition to another is declared
    here, never inferred from `kind` (which only names the front-end, for storage and
    messages): the runtime asks what a definition does, not what it is."""

    kind: str

    @property
    def children(self) -> Sequence[tuple[str, str, str, str]]:
        """The definitions its steps may start as child runs, (fingerprint, name, kind,
        body): stored with it, so a child run can be driven wherever its parent is."""
        ...

    @property
    def takes_signals(self) -> bool:
        """Whether its runs take signals (`Engine.send`) and keep a history of
        transitions."""
        ...

    @property
    def topics(self) -> Mapping[str, Mapping[str, str]]:
        """Topic events its runs take as signals, by topic: {payload path: data path}. A
        run waits for the events whose payload holds its data's values at those paths."""
        ...

    @property
    def any_input(self) -> bool:
        """Whether a run's input may be any JSON value (a handler's: the payload of the
        topic event it is delivered), not only an object of named parameters."""
        ...

    def steps(self, params: dict[str, Any]) -> list[NewStep]:
        """The rows of a new run (their input may be filled already, status ready)."""
        ...

    def decide(self, facts: RunFacts, fact: Fact) -> list[Decision]:
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


def decide(driver: Driver, facts: RunFacts, fact: Fact) -> list[Decision]:
    """`driver.decide`, with the promise kept even by a driver that breaks it."""
    try:
        return driver.decide(facts, fact)
    except Exception as exc:  # a driver's own failure is the run's, never the worker's
        where = getattr(fact, "step", None) or getattr(fact, "node", None)
        about = f" after step {where}" if where else ""
        return [FailRun({"type": "DriverError", "step": where,
                         "message": f"the {driver.kind} driver failed{about}: "
                                    f"{type(exc).__name__}: {exc}"})]


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
