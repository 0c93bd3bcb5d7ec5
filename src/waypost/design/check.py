"""`waypost check`: what would go wrong with a definition, found before it runs.

Errors are what makes a run fail or stall for a reason visible in the definition alone
(a state nothing reaches, a state that can never end, a guarded choice with no default, a
destructive step nothing guards, a deadline the timeouts cannot meet); warnings are what a
reviewer should look at (a step with no timeout, an action whose failure fails the run)."""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..dag.flow import Flow
from ..machine.define import Machine
from ..vocabulary.retry import Backoff


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    definition: str
    where: str | None  # a state, a step, a path
    message: str

    def line(self) -> str:
        at = f" [{self.where}]" if self.where else ""
        return f"{self.level}: {self.definition}{at}: {self.message}"


def definitions(module: types.ModuleType) -> list[Any]:
    """The flows and machines a module defines (not those it imports from elsewhere)."""
    found: list[Any] = []
    for value in vars(module).values():
        flow = isinstance(value, Flow) and value.fn.__module__ == module.__name__
        machine = (isinstance(value, type) and issubclass(value, Machine)
                   and value is not Machine and value.__module__ == module.__name__)
        if flow or machine:
            found.append(value)
    return found


def check(definition: Any) -> list[Finding]:
    if isinstance(definition, Flow):
        return check_flow(definition)
    return check_machine(definition)


# -- what any step can get wrong -------------------------------------------------------------
def _worst_case(options: dict[str, Any]) -> float | None:
    """The longest a step can take: every attempt to its timeout, with the longest
    backoff between them (jitter adds up to 25 %). None without a timeout."""
    timeout = options.get("timeout")
    if timeout is None:
        return None
    attempts = int(options.get("max_attempts", 1))
    backoff = Backoff.from_json(options["backoff"]) if "backoff" in options else Backoff()
    waits = sum(backoff.base_delay(n) * (1.25 if backoff.jitter else 1.0)
                for n in range(1, attempts))
    return attempts * float(timeout) + waits


def _step_findings(name: str, where: str, task: str, options: dict[str, Any]) -> list[Finding]:
    if options.get("timeout") is None and not options.get("completes_externally"):
        return [Finding("warning", name, where, f"task {task.rpartition(':')[2]} has no "
                        "timeout: a hung attempt holds its worker until the lease is lost")]
    return []


# -- flows --------------------------------------------------------------------------------------
def check_flow(flow: Flow[Any, Any]) -> list[Finding]:
    graph = flow.graph
    found: list[Finding] = []
    ancestors: dict[str, set[str]] = {}

    def above(name: str) -> set[str]:
        if name not in ancestors:
            ancestors[name] = set()
            for dep in graph.nodes[name].deps:
                ancestors[name] |= {dep} | above(dep)
        return ancestors[name]

    for node in graph.nodes.values():
        if node.kind in ("gate", "sleep", "child", "event"):  # no task of their own
            continue
        found += _step_findings(flow.name, node.name, node.task, node.options)
        if node.options.get("destructive"):
            guards = [a for a in above(node.name) if graph.nodes[a].kind == "gate"
                      or graph.nodes[a].options.get("compensate")]
            if not guards and not node.options.get("compensate"):
                found.append(Finding("error", flow.name, node.name, "destructive step with "
                                     "neither a gate nor a compensation before it"))
    deadline = flow.default_deadline
    if deadline is not None:
        found += _deadline(flow, deadline)
    return found


def _deadline(flow: Flow[Any, Any], deadline: float) -> list[Finding]:
    """Each root-to-leaf path whose worst case exceeds the deadline, or cannot be bounded."""
    graph = flow.graph
    leaves = [n for n, s in graph.successors.items() if not s]
    found = []
    for path in _paths(graph, leaves):
        total, unbounded = 0.0, []
        for name in path:
            node = graph.nodes[name]
            if node.kind in ("gate", "event"):
                wait = node.options.get("wait")
            elif node.kind == "sleep":
                wait = node.options.get("sleep") if isinstance(node.options.get("sleep"),
                                                               int | float) else None
            else:
                wait = _worst_case(node.options)
            if wait is None:
                unbounded.append(name)
            else:
                total += float(wait)
        where = " -> ".join(path)
        if unbounded:
            found.append(Finding("warning", flow.name, where, f"the deadline ({deadline:g}s) "
                                 f"cannot be checked: no bound on {', '.join(unbounded)}"))
        elif total > deadline:
            found.append(Finding("error", flow.name, where, f"worst case {total:g}s (timeouts, "
                                 f"attempts and backoff) is longer than the deadline "
                                 f"{deadline:g}s"))
    return found


def _paths(graph: Any, leaves: Iterable[str], limit: int = 100) -> list[list[str]]:
    paths: list[list[str]] = []

    def walk(name: str, tail: list[str]) -> None:
        if len(paths) >= limit:
            return
        deps = graph.nodes[name].deps
        if not deps:
            paths.append([name, *tail])
        for dep in deps:
            walk(dep, [name, *tail])

    for leaf in leaves:
        walk(leaf, [])
    return paths


# -- machines -----------------------------------------------------------------------------------
def _targets(spec: dict[str, Any], dead_end: str | None = None) -> list[str]:
    found = [r["to"] for r in spec.get("done", [])] + [t for _, t in spec.get("errors", [])]
    found += [r["to"] for routes in spec.get("on", {}).values() for r in routes]
    if dead_end is not None and ("task" in spec or "child" in spec):
        found.append(dead_end)  # where an unrouted failure goes
    return found + ([spec["then"]] if spec.get("then") else [])


def check_machine(machine: type[Machine]) -> list[Finding]:
    body = machine.compile()[2].body
    states: dict[str, dict[str, Any]] = body["states"]
    name = machine.name
    found: list[Finding] = []
    reachable, stack = set(), [body["initial"]]
    while stack:
        state = stack.pop()
        if state not in reachable:
            reachable.add(state)
            stack += _targets(states[state], body.get("dead_end"))
    for state in states:
        if state not in reachable:
            found.append(Finding("error", name, state, f"unreachable: no transition from "
                                 f"{body['initial']} leads here"))
    ends = {s for s, spec in states.items() if "final" in spec}
    changed = True
    while changed:  # the states from which some final state can be reached
        changed = False
        for state, spec in states.items():
            if state not in ends and any(t in ends for t in _targets(spec, body.get("dead_end"))):
                ends.add(state)
                changed = True
    for state, spec in states.items():
        if "final" in spec:
            continue
        if "task" in spec and not spec["done"]:
            found.append(Finding("error", name, state, "no way out: nothing says where to go "
                                 "when the action succeeds (done=)"))
        elif state not in ends:
            found.append(Finding("error", name, state, "no final state can be reached from "
                                 "here: a run that enters it never ends"))
        if "task" in spec:
            if spec["done"] and spec["done"][-1]["guard"] is not None:
                found.append(Finding("error", name, state, "done= has only guarded "
                                     "transitions: when every guard says no, the run fails "
                                     "(add an unguarded default last)"))
            if not spec["errors"] and body.get("dead_end") is None:
                found.append(Finding("warning", name, state, "a failure of the action has no "
                                     "route (errors=): it fails the run"))
            found += _step_findings(name, state, spec["task"], spec["options"])
            if spec["options"].get("destructive") and not spec["options"].get("compensate") \
                    and not _guarded(states, body["initial"], state):
                found.append(Finding("error", name, state, "destructive action reachable with "
                                     "neither a waiting state (a person's go-ahead) nor a "
                                     "compensation before it"))
        for event, routes in spec.get("on", {}).items():
            if routes and routes[-1]["guard"] is not None and spec["unhandled"] == "error":
                found.append(Finding("warning", name, state, f"on {event!r} has only guarded "
                                     "transitions: when every guard says no, the event is "
                                     "recorded as unhandled"))
    declared = body.get("events")
    if declared is not None:
        declared = [*declared, *body.get("topics", {})]  # a topic it takes is sent to it
        handled = {e for spec in states.values() for e in spec.get("on", {})}
        for event in declared:
            if event not in handled:
                found.append(Finding("error", name, None, f"event {event!r} is sent to the "
                                     "machine (events=) but no state handles it"))
        for state, spec in states.items():
            for event in spec.get("on", {}):
                if event not in declared:
                    found.append(Finding("error", name, state, f"on {event!r}: not one of "
                                         "the events sent to the machine (events=); a typo?"))
    return found


def _guarded(states: dict[str, dict[str, Any]], initial: str, target: str) -> bool:
    """Whether every way from `initial` to `target` passes a waiting state or an action
    with a compensation."""
    seen, stack = set(), [initial]
    while stack:
        state = stack.pop()
        if state == target:
            return False
        if state in seen:
            continue
        seen.add(state)
        spec = states[state]
        if "on" in spec or spec.get("options", {}).get("compensate"):
            continue  # guarded past here
        stack += _targets(spec)
    return True
