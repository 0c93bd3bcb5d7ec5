"""What the runtime needs to run, retry and watch one step, whichever front-end made it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ... import codec
from ...store.records import NewStep
from ...vocabulary.retry import Backoff


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


def encode_call(args: list[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    """A step's input as every task is called with it (executor.py): canonical JSON text of
    `{"args": [...], "kwargs": {...}}` and its checksum. Front-ends build inputs with it;
    the runtime builds compensations' inputs and replays' patched inputs with it."""
    text = codec.dumps({"args": args, "kwargs": kwargs})
    return text, codec.checksum(text)
