"""The DAG driver: pure decisions about a run, given facts loaded from the store.

It holds no state and does no I/O, so every rule here is testable without a database.
`runtime.advance` loads the facts inside the transaction that records an outcome and
applies what the driver decides in that same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .. import codec
from ..retry import Backoff
from ..store.records import NewStep
from .graph import Graph, render, template_refs
from .waits import resolve_moment

#: A step whose attempts were lost this many times (worker gone each time) is dead.
LOST_ATTEMPTS_LIMIT = 10
#: Node kinds that wait for time or a person and run no task.
WAIT_KINDS = ("gate", "sleep")


@dataclass(frozen=True)
class Retry:
    delay: float


@dataclass(frozen=True)
class Dead:
    pass


@dataclass(frozen=True)
class Ready:
    input: str
    checksum: str


@dataclass(frozen=True)
class Expand:
    children: list[NewStep]


@dataclass(frozen=True)
class Wait:
    """A gate or a sleep starts waiting; the caller knows the clock."""

    options: dict[str, Any]


@dataclass(frozen=True)
class Broken:
    """A node whose input cannot be built (a missing key, a map over a non-list)."""

    error: dict[str, Any]


def encode_input(args: list[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    text = codec.dumps({"args": args, "kwargs": kwargs})
    return text, codec.checksum(text)


class DagDriver:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def steps(self) -> list[NewStep]:
        """Every static node of a new run, waiting on its dependencies."""
        return [
            NewStep(name=n.name, node=n.name, task=n.task, kind=n.kind, status="pending",
                    waiting_on=len(n.deps), max_attempts=n.options["max_attempts"],
                    timeout=n.options["timeout"], heartbeat=n.options.get("heartbeat"),
                    queue_timeout=n.options.get("queue_timeout"))
            for n in self.graph.nodes.values()
        ]

    def activate(self, name: str, outputs: dict[str, Any],
                 params: dict[str, Any]) -> Ready | Expand | Wait | Broken:
        """What a node becomes once all its dependencies succeeded."""
        node = self.graph.nodes[name]
        if node.kind in WAIT_KINDS:
            try:
                return Wait(resolve_moment(node.options, outputs, params))
            except (LookupError, ValueError) as exc:
                return Broken({"type": "InputError", "message": str(exc)})
        try:
            args = render(node.args, outputs, params)
            kwargs = render(node.kwargs, outputs, params)
            if node.kind == "task":
                return Ready(*encode_input(args, kwargs))
            items = render(node.over, outputs, params)
        except LookupError as exc:
            return Broken({"type": "InputError", "message": f"cannot build input: {exc}"})
        if not isinstance(items, list):
            return Broken({"type": "InputError",
                           "message": f"map needs a list, got {type(items).__name__}"})
        children = []
        for i, item in enumerate(items):
            text, checksum = encode_input([item, *args], kwargs)
            children.append(NewStep(
                name=f"{name}[{i}]", node=name, task=node.task, kind="item", status="ready",
                waiting_on=0, max_attempts=node.options["max_attempts"],
                timeout=node.options["timeout"], input=text, input_checksum=checksum,
                map_index=i, heartbeat=node.options.get("heartbeat"),
                queue_timeout=node.options.get("queue_timeout")))
        return Expand(children)

    def on_lost(self, lost_before: int) -> Retry | Dead:
        """An attempt whose worker vanished (crash, kill -9, partition) is the worker's
        failure, not the task's: it is retried at once without using up the task's
        retries, unless the step has lost so many workers that it is probably what kills
        them."""
        return Dead() if lost_before + 1 >= LOST_ATTEMPTS_LIMIT else Retry(0.0)

    def options(self, node: str, kind: str) -> dict[str, Any]:
        """The task options a step runs under: a compensation step (kind `undo`) runs
        under its compensating task's own policy, not the one of the step it undoes."""
        options: dict[str, Any] = self.graph.nodes[node].options
        return options["compensate_options"] if kind == "undo" else options

    def on_failure(self, options: dict[str, Any], attempts: int, max_attempts: int,
                   fatal: bool, rand: float | None = None) -> Retry | Dead:
        if fatal or attempts >= max_attempts:
            return Dead()
        backoff = Backoff.from_json(options["backoff"])
        return Retry(backoff.delay(attempts, rand))

    def escalates(self, options: dict[str, Any], failures: int, fatal: bool) -> bool:
        """Ask an operator after every `escalate_after` failed attempts (not on Fatal: it
        says retrying cannot help, and the dead letter keeps it for a replay)."""
        every = options.get("escalate_after") or 0
        return every > 0 and not fatal and failures > 0 and failures % every == 0

    @cached_property
    def compensations(self) -> dict[str, str]:
        """Nodes that have a compensating task, with that task's name."""
        return {n.name: n.options["compensate"] for n in self.graph.nodes.values()
                if "compensate" in n.options}

    def gather(self, node: str, children: list[tuple[str, str | None, Any]]) -> Any:
        """The output of a map node from its items' (status, output, error), or a Broken."""
        failed = [c for c in children if c[0] != "succeeded"]
        if failed:
            first = codec.loads(failed[0][2]) or {}
            return Broken({"type": "MapItemFailed",
                           "message": f"{len(failed)} of {len(children)} items of {node} failed; "
                                      f"first: {first.get('type')}: {first.get('message')}"})
        return [codec.loads(c[1]) for c in children]

    def output(self, outputs: dict[str, Any], params: dict[str, Any]) -> Any:
        return render(self.graph.output, outputs, params)

    def output_deps(self) -> list[str]:
        return template_refs(self.graph.output)
