"""The DAG driver: what a flow's graph means for a run, as decisions (runtime/driver.py).

It holds no state and does no I/O, so every rule here is testable without a database.
What the runtime does with the decisions (fences, retries, timers, sagas, how a run ends)
is the same for every front-end and lives in `runtime/`.

It never raises: an input it cannot build, a fan-out over something that is not a list,
an output template naming a key a task did not return, a stored output it cannot decode,
each becomes a failed step or a failed run whose message names the step and the key.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from .. import codec
from ..runtime.seam import (
    AwaitEvent,
    Block,
    Decision,
    EndStep,
    Fact,
    FailRun,
    FanOut,
    FinishRun,
    ItemsEnded,
    MakeReady,
    Release,
    RunFacts,
    Settled,
    StartChild,
    Started,
    StepFailed,
    StepPolicy,
    StepsFreed,
    StepSucceeded,
    WaitUntil,
    encode_call,
    failed_by,
    register_kind,
)
from ..store.records import NewStep
from .graph import Graph, Node, render, template_refs
from .waits import due_at, resolve_moment

#: Node kinds that wait for time or a person and run no task.
WAIT_KINDS = ("gate", "sleep")
#: Node kinds that run no task of their own (a child step waits for its child run, an
#: event step for an event).
NO_TASK = (*WAIT_KINDS, "child", "event")


def _policy(options: dict[str, Any], task: str) -> StepPolicy:
    return StepPolicy.from_options(options, task)


class _Broken(Exception):
    """An input or output of a node cannot be built from the run's data."""


class DagDriver:
    kind = "dag"
    takes_signals = False
    topics: dict[str, dict[str, str]] = {}
    any_input = False

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        #: Definitions its child steps start, to store with it (set by `Flow.compile`).
        self.children: list[tuple[str, str, str, str]] = []

    @classmethod
    def from_body(cls, body: str) -> DagDriver:
        return cls(Graph.from_json(codec.loads(body)))

    # -- policies and shape ---------------------------------------------------------------
    @cached_property
    def _policies(self) -> dict[str, StepPolicy]:
        return {n.name: _policy(n.options, n.task) for n in self.graph.nodes.values()}

    def policy(self, node: str, kind: str) -> StepPolicy:
        policy = self._policies[node]
        return policy.undo() if kind == "undo" else policy

    def policies(self) -> list[StepPolicy]:
        found = [p for name, p in self._policies.items()
                 if self.graph.nodes[name].kind not in NO_TASK]
        return found + [p.compensate_policy for p in found if p.compensate_policy is not None]

    @cached_property
    def _compensations(self) -> dict[str, str]:
        return {name: p.compensate for name, p in self._policies.items()
                if p.compensate is not None}

    def compensations(self) -> dict[str, str]:
        return self._compensations

    def edges(self, node: str) -> tuple[list[str], list[str]]:
        n = self.graph.nodes[node]
        return n.data_deps, n.after

    def downstream(self, node: str) -> list[str]:
        return self.graph.downstream(node)

    # -- a new run ---------------------------------------------------------------------------
    def steps(self, params: dict[str, Any]) -> list[NewStep]:
        """Every node of a new run, waiting on its dependencies; root tasks whose input
        renders are inserted ready (saving an update each). Other roots are decided on
        `Started`."""
        rows = []
        for n in self.graph.nodes.values():
            policy = self._policies[n.name]
            step = policy.new_step(n.name, n.name, n.kind, "pending", len(n.deps))
            if not n.deps and n.kind == "task":
                try:
                    step.input, step.input_checksum = self._call(n, {}, params)
                    step.status = "ready"
                except _Broken:
                    pass
            rows.append(step)
        return rows

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, facts: RunFacts, fact: Fact) -> list[Decision]:
        if isinstance(fact, StepSucceeded):
            successors = self.graph.successors.get(fact.node, [])
            return [Release(successors)] if successors else []
        if isinstance(fact, StepsFreed):
            return [self._activate(facts, name) for name in fact.steps]
        if isinstance(fact, StepFailed):
            later = self.graph.downstream(fact.node)
            return [Block(later)] if later else []
        if isinstance(fact, ItemsEnded):
            return [self._gather(facts, fact.node)]
        if isinstance(fact, Settled):
            return [self._end(facts)]
        if isinstance(fact, Started):
            roots = [n for n in self.graph.nodes.values() if not n.deps]
            return [self._activate(facts, n.name) for n in roots
                    if n.kind != "task" or not self._renders(n, facts.params)]
        return []

    def _renders(self, node: Node, params: dict[str, Any]) -> bool:
        try:
            self._call(node, {}, params)
        except _Broken:
            return False
        return True

    def _outputs(self, facts: RunFacts, names: list[str]) -> dict[str, Any]:
        decoded = {}
        for name, text in facts.outputs(names).items():
            try:
                decoded[name] = codec.loads(text)
            except (ValueError, RecursionError) as exc:
                raise _Broken(f"the output of {name} cannot be decoded: {exc}") from None
        return decoded

    def _call(self, node: Node, outputs: dict[str, Any],
              params: dict[str, Any]) -> tuple[str, str]:
        try:
            return encode_call(render(node.args, outputs, params),
                               render(node.kwargs, outputs, params))
        except (LookupError, TypeError, ValueError, RecursionError) as exc:
            raise _Broken(f"cannot build input: {exc}") from None

    def _activate(self, facts: RunFacts, name: str) -> Decision:
        """What a node becomes once every step it waits for has succeeded."""
        node = self.graph.nodes[name]
        try:
            outputs = self._outputs(facts, node.data_deps)
            if node.kind in WAIT_KINDS:
                try:
                    moment = resolve_moment(node.options, outputs, facts.params)
                except (LookupError, ValueError, TypeError) as exc:
                    raise _Broken(str(exc)) from None
                return WaitUntil(name, due_at(moment, facts.now()))
            if node.kind == "task":
                return MakeReady(name, *self._call(node, outputs, facts.params))
            if node.kind == "event":
                return self._await(node, outputs, facts)
            if node.kind == "child":
                spec = node.options["child"]
                try:
                    given = codec.dumps(render(node.args[0], outputs, facts.params))
                except (LookupError, TypeError, ValueError, RecursionError) as exc:
                    raise _Broken(f"cannot build the child's input: {exc}") from None
                return StartChild(name, spec["definition"], given, spec["name"])
            args_text, _ = self._call(node, outputs, facts.params)
            call = codec.loads(args_text)
            try:
                items = render(node.over, outputs, facts.params)
            except LookupError as exc:
                raise _Broken(f"cannot build input: {exc}") from None
            if not isinstance(items, list):
                raise _Broken(f"map needs a list, got {type(items).__name__}")
            return FanOut(name, self._items(node, items, call["args"], call["kwargs"]))
        except _Broken as exc:
            return EndStep(name, False, error={"type": "InputError", "message": str(exc)})

    def _await(self, node: Node, outputs: dict[str, Any], facts: RunFacts) -> Decision:
        options = node.options
        try:
            match = render(options["match"], outputs, facts.params)
            codec.dumps(match)
        except (LookupError, TypeError, ValueError, RecursionError) as exc:
            raise _Broken(f"cannot build what {node.name} matches: {exc}") from None
        wait = options.get("wait")
        return AwaitEvent(node.name, options["topic"], match,
                          None if wait is None else facts.now() + float(wait))

    def _items(self, node: Node, items: list[Any], args: list[Any],
               kwargs: dict[str, Any]) -> list[NewStep]:
        policy = self._policies[node.name]
        children = []
        for i, item in enumerate(items):
            text, checksum = encode_call([item, *args], kwargs)
            children.append(policy.new_step(f"{node.name}[{i}]", node.name, "item", "ready", 0,
                                            text, checksum, i))
        return children

    def _gather(self, facts: RunFacts, node: str) -> Decision:
        """A map's output is the list of its items' outputs, or it failed with them."""
        items = facts.items(node)
        failed = [c for c in items if c[0] != "succeeded"]
        if failed:
            try:
                first = codec.loads(failed[0][2]) or {}
            except (ValueError, RecursionError):
                first = {}
            return EndStep(node, False, error={
                "type": "MapItemFailed",
                "message": f"{len(failed)} of {len(items)} items of {node} failed; "
                           f"first: {first.get('type')}: {first.get('message')}"})
        try:
            return EndStep(node, True, codec.dumps([codec.loads(c[1]) for c in items]))
        except (ValueError, TypeError, RecursionError) as exc:
            return EndStep(node, False, error={"type": "InputError",
                                               "message": f"{node}: cannot gather: {exc}"})

    def _end(self, facts: RunFacts) -> Decision:
        failure = facts.first_failure()
        if failure is not None:
            return failed_by(*failure)
        deps = template_refs(self.graph.output)
        try:
            output = render(self.graph.output, self._outputs(facts, deps), facts.params)
            return FinishRun(codec.dumps(output))
        except _Broken as exc:
            return FailRun({"step": None, "type": "OutputError", "message": str(exc)})
        except (LookupError, TypeError, ValueError, RecursionError) as exc:
            return FailRun({"step": None, "type": "OutputError",
                            "message": f"cannot build the output of flow {self.graph.flow}: "
                                       f"{exc}"})


register_kind("dag", DagDriver.from_body)
