"""The state-machine driver: what a machine's states mean for a run, as decisions.

A machine run has one step per visit of a state with an action, named `state#n` after
the transition that entered it (n counts the run's transitions), so a state re-entered in
a loop keeps every visit's attempts, input and output. The machine's state and data live
on the run and change only by a `Transition` decision, which the runtime stores with the
history row in the same transaction as the step outcome that caused it.

Like every driver it never raises: a guard that fails, an output that cannot be merged, a
run whose guards are not in this process (another version of the class) are the run's
failure, with a message naming the state.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from .. import codec
from ..runtime.driver import (
    Decision,
    Event,
    FailRun,
    FinishRun,
    Insert,
    RunFacts,
    Settled,
    Started,
    StepFailed,
    StepPolicy,
    StepSucceeded,
    Transition,
    encode_call,
    register_kind,
)
from ..store.records import NewStep
from .define import Guard, registered_machines


class _Broken(Exception):
    """What the run's data or definition does not allow; the run fails with it."""


def merge(data: dict[str, Any], state: str, result: Any) -> dict[str, Any]:
    """The data after `state`'s action returned `result`: a dict is merged in, None
    changes nothing, anything else is kept under the state's name."""
    if result is None:
        return data
    if isinstance(result, dict):
        return {**data, **result}
    return {**data, state: result}


class MachineDriver:
    kind = "machine"

    def __init__(self, body: dict[str, Any], guards: list[Guard] | None) -> None:
        self.body = body
        self.name: str = body["machine"]
        self.initial: str = body["initial"]
        self.states: dict[str, dict[str, Any]] = body["states"]
        #: None when this process has no class compiling to this body.
        self.guards = guards

    @classmethod
    def from_body(cls, text: str) -> MachineDriver:
        body = codec.loads(text)
        found = registered_machines().get(body["machine"])
        return cls(body, found.guards if found is not None and found.body == text else None)

    # -- policies and shape ---------------------------------------------------------------
    @cached_property
    def _policies(self) -> dict[str, StepPolicy]:
        return {name: StepPolicy.from_options(s["options"], s["task"])
                for name, s in self.states.items() if "task" in s}

    def policy(self, node: str, kind: str) -> StepPolicy:
        policy = self._policies[node]
        return policy.undo() if kind == "undo" else policy

    def policies(self) -> list[StepPolicy]:
        found = list(self._policies.values())
        return found + [p.compensate_policy for p in found if p.compensate_policy is not None]

    def compensations(self) -> dict[str, str]:
        return {name: p.compensate for name, p in self._policies.items()
                if p.compensate is not None}

    def edges(self, node: str) -> tuple[list[str], list[str]]:
        return [], []  # a visit's input is the data it was entered with, kept on the step

    def downstream(self, node: str) -> list[str]:
        return []  # nothing waits on a visit: the next one is inserted when it ends

    # -- a new run ---------------------------------------------------------------------------
    def steps(self, params: dict[str, Any]) -> list[NewStep]:
        """The initial state's first visit, ready (its `Transition` is decided on
        `Started`)."""
        return self._enter(self.initial, params, 1)

    def _enter(self, state: str, data: dict[str, Any], seq: int) -> list[NewStep]:
        spec = self.states[state]
        if "task" not in spec:
            return []  # a final state: the run settles and ends (`Settled`)
        text, checksum = encode_call([data], {})
        return [self._policies[state].new_step(f"{state}#{seq}", state, "task", "ready", 0,
                                               text, checksum)]

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, facts: RunFacts, event: Event) -> list[Decision]:
        try:
            if isinstance(event, StepSucceeded):
                return self._done(facts, event.step, event.node)
            if isinstance(event, StepFailed):
                return self._failed(facts, event)
            if isinstance(event, Started):
                return [Transition(self.initial, codec.dumps(facts.params), "start")]
            if isinstance(event, Settled):
                return [self._end(facts)]
        except _Broken as exc:
            where = getattr(event, "node", None)
            return [FailRun({"type": "MachineError", "step": getattr(event, "step", None),
                             "message": f"machine {self.name}"
                                        f"{f', state {where}' if where else ''}: {exc}"})]
        return []

    def _data(self, facts: RunFacts) -> tuple[dict[str, Any], int]:
        _, text, seq = facts.machine()
        try:
            data = codec.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _Broken(f"its data cannot be decoded: {exc}") from None
        if not isinstance(data, dict):
            raise _Broken(f"its data is not a JSON object: {text!r:.80}")
        return data, seq

    def _move(self, to: str, data: dict[str, Any], seq: int, trigger: str,
              handles: str | None = None) -> list[Decision]:
        try:
            text = codec.dumps(data)
        except TypeError as exc:
            raise _Broken(f"the data cannot be stored: {exc}") from None
        decisions: list[Decision] = [Transition(to, text, trigger, handles=handles)]
        entered = self._enter(to, data, seq + 1)
        if entered:
            decisions.append(Insert(entered))
        return decisions

    def _done(self, facts: RunFacts, step: str, state: str) -> list[Decision]:
        text = facts.outputs([step]).get(step)
        try:
            result = codec.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _Broken(f"the output of {step} cannot be decoded: {exc}") from None
        data, seq = self._data(facts)
        data = merge(data, state, result)
        for route in self.states[state]["done"]:
            if route["guard"] is None or self._guard(route["guard"], data, result, route):
                return self._move(route["to"], data, seq, "done")
        raise _Broken(f"no transition out of {state} applies to the result of {step} (the "
                      "guards all said no and there is no default)")

    def _guard(self, index: int, data: dict[str, Any], result: Any,
               route: dict[str, Any]) -> bool:
        if self.guards is None:
            raise _Broken("the guards of this run's definition are not in this process (its "
                          "class is not imported here, or its code changed since the run "
                          "started)")
        try:
            return bool(self.guards[index](data, result))
        except Exception as exc:  # a guard is user code: its failure is the run's
            raise _Broken(f"the guard of the transition to {route['to']} raised "
                          f"{type(exc).__name__}: {exc}") from None

    def _failed(self, facts: RunFacts, event: StepFailed) -> list[Decision]:
        try:
            error = codec.loads(event.error) if event.error else {}
        except (ValueError, RecursionError):
            error = {}
        kind = (error or {}).get("type")
        routes = dict(self.states.get(event.node, {}).get("errors", []))
        target = routes.get(kind) if kind else None
        if target is None:
            target = routes.get("Exception") or routes.get("BaseException")
        if target is None:
            return []  # unrouted: the run settles as failed, the step is a dead letter
        data, seq = self._data(facts)
        data = {**data, "last_error": {"state": event.node, "step": event.step, "type": kind,
                                       "message": error.get("message")}}
        return self._move(target, data, seq, "error", handles=event.step)

    def _end(self, facts: RunFacts) -> Decision:
        state, text, _ = facts.machine()
        spec = self.states.get(state or "", {})
        if spec.get("final") == "succeeded":
            return FinishRun(text or "null")
        if spec.get("final") == "failed":
            return FailRun({"type": "MachineFailed", "step": None,
                            "message": f"machine {self.name} ended in failed state {state}"})
        failure = facts.first_failure()
        if failure is not None:
            step, error = failure
            try:
                detail = codec.loads(error) or {}
            except (ValueError, RecursionError):
                detail = {}
            return FailRun({"step": step, "type": detail.get("type"),
                            "message": detail.get("message")})
        return FailRun({"type": "MachineError", "step": None,
                        "message": f"machine {self.name} stopped in state {state} with "
                                   "nothing left to run"})


register_kind("machine", MachineDriver.from_body)
