"""`@wp.on(pattern)`: a handler, and the driver of its deliveries.

Each (event, handler) pair is a delivery: a run of the handler's definition, started in
the transaction that stored the event, with the event's payload as its input and one step
that calls the handler with it. Being a run and a step, a delivery has everything a task
has (retries, backoff, timeouts, heartbeats, isolation, limits, the dead-letter queue and
`waypost dlq replay`) and is seen where every run is (`show`, `runs`, `trace`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from .. import codec
from ..registry import registry
from ..runtime.seam import (
    Decision,
    Fact,
    FinishRun,
    RunFacts,
    Settled,
    StepPolicy,
    encode_call,
    failed_by,
    register_kind,
)
from ..store.records import NewStep
from ..vocabulary.task import Task
from ..vocabulary.topics import check_pattern


class Handler:
    """A definition whose runs are deliveries (runtime/driver.py `Definition`). Calling it
    calls the function, so a handler is unit-tested like any function."""

    kind = "handler"
    default_deadline = None

    def __init__(self, task: Task[Any, Any], pattern: str) -> None:
        self.task = task
        self.pattern = check_pattern(pattern, f"handler {task.short_name}")
        self.name = task.name
        self.body = codec.dumps({"handler": self.name, "pattern": self.pattern,
                                 "task": task.name, "step": task.short_name,
                                 "options": task.options()})
        self.fingerprint = hashlib.sha256(self.body.encode()).hexdigest()[:16]
        self._driver = HandlerDriver.from_body(self.body)
        self.__doc__ = task.__doc__
        registry.declare_definition(self, self.fingerprint)
        registry.declare_subscriber(self)

    def compile(self) -> tuple[str, str, HandlerDriver]:
        return self.fingerprint, self.body, self._driver

    def bind_input(self, data: Any) -> Any:
        codec.dumps(data, codec.MAX_DEPTH)
        return data

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.task.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<handler {self.name} on {self.pattern}>"


def on(pattern: str, **options: Any) -> Callable[[Callable[..., Any]], Handler]:
    """Declare a handler of the events whose topic matches `pattern` (`order.placed`,
    `order.*`, `order.**`). It is called with the event's payload; `options` are a task's
    (`retries`, `backoff`, `timeout`, `heartbeat`, `isolation`, `uses`, ...). A handler
    takes the events emitted after a worker with its code first started; `waypost
    replay-topic` delivers older ones."""
    check_pattern(pattern, "wp.on")

    def wrap(fn: Callable[..., Any]) -> Handler:
        return Handler(Task(fn, **options), pattern)

    return wrap


class HandlerDriver:
    """One step, the handler's call; the run's output is the handler's, its failure the
    step's."""

    kind = "handler"
    children: tuple[tuple[str, str, str, str], ...] = ()
    takes_signals = False
    topics: dict[str, dict[str, str]] = {}
    any_input = True

    def __init__(self, step: str, policy: StepPolicy) -> None:
        self.step = step
        self._policy = policy

    @classmethod
    def from_body(cls, body: str) -> HandlerDriver:
        spec = codec.loads(body)
        return cls(spec["step"], StepPolicy.from_options(spec["options"], spec["task"]))

    def steps(self, params: Any) -> list[NewStep]:
        text, checksum = encode_call([params], {})
        return [self._policy.new_step(self.step, self.step, "task", "ready", 0, text, checksum)]

    def decide(self, facts: RunFacts, fact: Fact) -> list[Decision]:
        if not isinstance(fact, Settled):
            return []
        output = facts.outputs([self.step]).get(self.step)  # known without a read
        if output is not None:
            return [FinishRun(output)]
        return [failed_by(*(facts.first_failure() or (self.step, None)))]

    def policy(self, node: str, kind: str) -> StepPolicy:
        return self._policy

    def policies(self) -> list[StepPolicy]:
        return [self._policy]

    def compensations(self) -> dict[str, str]:
        return {}

    def edges(self, node: str) -> tuple[list[str], list[str]]:
        return [], []

    def downstream(self, node: str) -> list[str]:
        return []


register_kind("handler", HandlerDriver.from_body)
