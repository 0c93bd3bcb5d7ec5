"""The state-machine driver: what a machine's states mean for a run, as decisions.

A machine run has one step per visit of a state with an action, named `state#n` after
the transition that entered it (n counts the run's transitions), so a state re-entered in
a loop keeps every visit's attempts, input and output. The machine's state and data live
on the run and change only by a `Transition` decision, which the runtime stores with the
history row in the same transaction as the step outcome that caused it.

Like every driver it never raises: a guard that fails or an output that cannot be merged
is the run's failure, with a message naming the state. A decision that needs guards this
process has not (it lacks the class, or has another version of it) is left to a process
that has them: an event stays pending, the end of a visit becomes `DecideLater`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from typing import Any

from .. import codec
from ..moments import next_time_of_day
from ..runtime.seam import (
    DECIDE_EVENT,
    Consume,
    DecideLater,
    Decision,
    EndStep,
    Fact,
    FailRun,
    FinishRun,
    Insert,
    RunFacts,
    Settled,
    SignalArrived,
    StartChild,
    Started,
    StepFailed,
    StepPolicy,
    StepsFreed,
    StepSucceeded,
    Transition,
    WaitUntil,
    encode_call,
)
from ..store.records import NewStep

#: A transition's condition, user code: called with the machine's data and the payload.
Guard = Callable[[dict[str, Any], Any], bool]
_WAITING = StepPolicy(task="waypost.state")


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
    takes_signals = True
    any_input = False

    def __init__(self, body: dict[str, Any], guards: list[Guard] | None) -> None:
        self.body = body
        self.name: str = body["machine"]
        self.initial: str = body["initial"]
        self.states: dict[str, dict[str, Any]] = body["states"]
        #: None when this process has no class compiling to this body.
        self.guards = guards
        #: Definitions its states start, to store with it (set by `Machine.compile`).
        self.children: list[tuple[str, str, str, str]] = []
        #: Topics whose events it takes as its own: {topic: {payload path: data path}}
        #: (runtime/event_waits.py `listen`).
        self.topics: dict[str, dict[str, str]] = body.get("topics", {})

    # -- policies and shape ---------------------------------------------------------------
    @cached_property
    def _policies(self) -> dict[str, StepPolicy]:
        return {name: StepPolicy.from_options(s["options"], s["task"])
                for name, s in self.states.items() if "task" in s}

    def policy(self, node: str, kind: str) -> StepPolicy:
        policy = self._policies.get(node)
        if policy is None:  # a waiting state's visit: no task, one attempt, no retries
            return _WAITING
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
        """The initial state's first visit (its `Transition` is decided on `Started`)."""
        return self._visit(self.initial, params, 1)

    def _visit(self, state: str, data: dict[str, Any], seq: int) -> list[NewStep]:
        """The step of a visit: an action's, ready; a waiting state's, pending until it
        waits (`WaitUntil`); none for a final state, where the run settles and ends."""
        spec = self.states[state]
        name = f"{state}#{seq}"
        if "task" in spec:
            text, checksum = encode_call([data], {})
            return [self._policies[state].new_step(name, state, "task", "ready", 0,
                                                   text, checksum)]
        if "on" in spec:
            return [NewStep(name=name, node=state, task="waypost.state", kind="sleep",
                            status="pending", waiting_on=0, max_attempts=1, timeout=None)]
        if "child" in spec:
            return [NewStep(name=name, node=state, task="waypost.child", kind="child",
                            status="pending", waiting_on=0, max_attempts=1, timeout=None)]
        return []

    def _wait(self, facts: RunFacts, state: str, seq: int, data: str) -> list[Decision]:
        """What a visit waits for: a child run (started with `data`), or an event or timer."""
        spec = self.states[state]
        if "child" in spec:
            child = spec["child"]
            return [StartChild(f"{state}#{seq}", child["definition"], data, child["name"])]
        if "on" not in spec:
            return []
        if spec.get("until") is not None:
            due: float | None = next_time_of_day(spec["until"]["at"], spec["until"]["tz"],
                                                 facts.now())
        else:
            due = None if spec["after"] is None else facts.now() + spec["after"]
        return [WaitUntil(f"{state}#{seq}", due)]

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, facts: RunFacts, fact: Fact) -> list[Decision]:
        try:
            if isinstance(fact, StepSucceeded):
                return self._done(facts, fact.step, fact.node, fact.kind)
            if isinstance(fact, StepFailed):
                return self._failed(facts, fact)
            if isinstance(fact, StepsFreed):  # a waiting visit reopened (resume, replay)
                return self._rewait(facts, fact.steps)
            if isinstance(fact, SignalArrived):
                return self._event(facts, fact)
            if isinstance(fact, Started):
                return [Transition(self.initial, codec.dumps(facts.params), "start",
                                   offers="on" in self.states[self.initial]),
                        *self._wait(facts, self.initial, 1, codec.dumps(facts.params))]
            if isinstance(fact, Settled):
                return self._end(facts)
        except _Broken as exc:
            where = getattr(fact, "node", None)
            return [FailRun({"type": "MachineError", "step": getattr(fact, "step", None),
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

    def _move(self, facts: RunFacts, to: str, data: dict[str, Any], seq: int, trigger: str,
              handles: str | None = None, event: SignalArrived | None = None,
              leaving: str | None = None) -> list[Decision]:
        """Go to `to`: the transition, the end of the waiting visit `leaving`, the next
        visit and its wait."""
        try:
            text = codec.dumps(data)
        except TypeError as exc:
            raise _Broken(f"the data cannot be stored: {exc}") from None
        decisions: list[Decision] = [Transition(
            to, text, trigger, event_id=event.event_id if event else None, handles=handles,
            event=event.seq if event else None, offers="on" in self.states[to])]
        if leaving is not None:
            decisions.append(EndStep(leaving, True, codec.dumps(
                {"left_by": trigger, "event": event.name if event else None})))
        entered = self._visit(to, data, seq + 1)
        if entered:
            decisions.append(Insert(entered))
        return decisions + self._wait(facts, to, seq + 1, text)

    def _event(self, facts: RunFacts, event: SignalArrived) -> list[Decision]:
        if event.name == DECIDE_EVENT:
            return self._decided(facts, event)
        state, _, seq = facts.machine()
        spec = self.states.get(state or "", {})
        if "task" in spec:
            return []  # the action runs: the event waits for its transition
        if "on" not in spec:
            return [Consume(event.seq, "unhandled")]  # ended, or not started
        try:
            payload = codec.loads(event.payload)
        except (ValueError, RecursionError):
            return [Consume(event.seq, "unhandled")]
        data, _ = self._data(facts)
        data = merge(data, event.name, payload)
        for route in spec["on"].get(event.name, []):
            if route["guard"] is not None and self.guards is None:
                return []  # decided where the guards are: a worker's sweep offers it again
            if route["guard"] is None or self._guard(route["guard"], data, payload, route):
                return self._move(facts, route["to"], data, seq, "event", event=event,
                                  leaving=f"{state}#{seq}")
        return [Consume(event.seq, {"error": "unhandled", "ignore": "ignored",
                                    "defer": "deferred"}[spec["unhandled"]])]

    def _decided(self, facts: RunFacts, event: SignalArrived) -> list[Decision]:
        """The end of a visit that the process which recorded it could not decide
        (`DecideLater`): decided here if the guards are here, the transition taking the
        event; left pending if not."""
        state, _, seq = facts.machine()
        try:
            later = codec.loads(event.payload)
            step, kind = str(later["step"]), str(later["kind"])
        except (ValueError, RecursionError, TypeError, KeyError):
            return [Consume(event.seq, "ignored")]
        if state is None or step != f"{state}#{seq}":
            return [Consume(event.seq, "ignored")]  # the run was moved on otherwise
        decisions = self._done(facts, step, state, kind)
        if not decisions or not isinstance(decisions[0], Transition):
            return []  # not here either
        moved = replace(decisions[0], event=event.seq)
        # The step's end was counted when it was recorded: nothing else settles the run.
        ending = [self._final(moved.to, moved.data)] if "final" in self.states[moved.to] else []
        return [moved, *decisions[1:], *ending]

    def _rewait(self, facts: RunFacts, steps: list[str]) -> list[Decision]:
        """The current visit waits again (its timer starts again); an older one, left
        behind when the run stopped, just ends."""
        state, _, seq = facts.machine()
        decisions: list[Decision] = []
        for step in steps:
            if state is not None and step == f"{state}#{seq}":
                decisions += self._wait(facts, state, seq, facts.machine()[1] or "{}")
            else:
                decisions.append(EndStep(step, True, codec.dumps({"left_by": "resume"})))
        return decisions

    def _timer(self, facts: RunFacts, step: str, state: str) -> list[Decision]:
        current, _, seq = facts.machine()
        spec = self.states.get(state, {})
        if current != state or step != f"{state}#{seq}" or spec.get("then") is None:
            return []  # an event moved the machine on first
        data, _ = self._data(facts)
        return self._move(facts, spec["then"], data, seq, "timer")

    def _done(self, facts: RunFacts, step: str, state: str, kind: str) -> list[Decision]:
        if kind == "sleep":
            return self._timer(facts, step, state)
        if kind not in ("task", "child"):
            return []  # a waiting visit this driver ended itself (`EndStep`)
        text = facts.outputs([step]).get(step)
        try:
            result = codec.loads(text)
        except (ValueError, RecursionError) as exc:
            raise _Broken(f"the output of {step} cannot be decoded: {exc}") from None
        data, seq = self._data(facts)
        data = merge(data, state, result)
        for route in self.states[state]["done"]:
            if route["guard"] is not None and self.guards is None:
                return [DecideLater(step, kind)]
            if route["guard"] is None or self._guard(route["guard"], data, result, route):
                return self._move(facts, route["to"], data, seq, "done")
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
            target = (routes.get("Exception") or routes.get("BaseException")
                      or self.body.get("dead_end"))
        if target is None:
            return []  # unrouted: the run settles as failed, the step is a dead letter
        data, seq = self._data(facts)
        data = {**data, "last_error": {"state": event.node, "step": event.step, "type": kind,
                                       "message": error.get("message")}}
        return self._move(facts, target, data, seq, "error", handles=event.step)

    def _end(self, facts: RunFacts) -> list[Decision]:
        state, text, seq = facts.machine()
        spec = self.states.get(state or "", {})
        if "final" in spec:
            return [self._final(state or "", text)]
        visit = f"{state}#{seq}"
        if ("task" in spec or "child" in spec) and facts.outputs([visit]).get(visit):
            return []  # its end is to be decided where the guards are (`DecideLater`)
        failure = facts.first_failure()
        if failure is not None:
            step, error = failure
            try:
                detail = codec.loads(error) or {}
            except (ValueError, RecursionError):
                detail = {}
            return [FailRun({"step": step, "type": detail.get("type"),
                             "message": detail.get("message")})]
        return [FailRun({"type": "MachineError", "step": None,
                         "message": f"machine {self.name} stopped in state {state} with "
                                    "nothing left to run"})]

    def _final(self, state: str, text: str | None) -> Decision:
        if self.states[state]["final"] == "succeeded":
            return FinishRun(text or "null")
        return FailRun({"type": "MachineFailed", "step": None,
                        "message": f"machine {self.name} ended in failed state {state}"})

