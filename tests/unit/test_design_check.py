"""`waypost check`: each finding, triggered by its own deliberately broken definition, and
none of them in the clean examples; `waypost graph`: Mermaid of a flow and a machine."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import examples.orders
import examples.payments
import waypost as wp
from waypost.design.check import Finding, check, definitions
from waypost.design.mermaid import mermaid

SAFE = {"timeout": 5}


@wp.task(**SAFE)  # type: ignore[arg-type]
def act(data: dict[str, Any]) -> None:
    return None


@wp.task(**SAFE, destructive=True)  # type: ignore[arg-type]
def wipe(data: dict[str, Any]) -> None:
    return None


@wp.task()
def untimed(data: dict[str, Any]) -> None:
    return None


def machine(**states: Any) -> type[wp.Machine]:
    return type("Broken", (wp.Machine,), {"__module__": __name__, "initial": "a", **states})


def only(findings: list[Finding], level: str) -> list[tuple[str | None, str]]:
    return [(f.where, f.message) for f in findings if f.level == level]


CASES = [
    ("unreachable", dict(a=wp.State(act, done="z", errors={Exception: "z"}), b=wp.State(
        act, done="z", errors={Exception: "z"}), z=wp.Final()), "error", "b", "unreachable"),
    ("no way out", dict(a=wp.State(act, errors={Exception: "z"}), z=wp.Final()), "error", "a",
     "no way out"),
    ("no final reachable", dict(a=wp.State(act, done="b", errors={Exception: "z"}),
                                b=wp.State(on={"x": "b"}), z=wp.Final()), "error", "b",
     "no final state can be reached"),
    ("guarded without default", dict(a=wp.State(act, done=[wp.to("z", when=lambda d, r: 1)],
                                                errors={Exception: "z"}), z=wp.Final()),
     "error", "a", "only guarded transitions"),
    ("unrouted failure", dict(a=wp.State(act, done="z"), z=wp.Final()), "warning", "a",
     "has no route"),
    ("no timeout", dict(a=wp.State(untimed, done="z", errors={Exception: "z"}), z=wp.Final()),
     "warning", "a", "has no timeout"),
    ("destructive unguarded", dict(a=wp.State(wipe, done="z", errors={Exception: "z"}),
                                   z=wp.Final()), "error", "a", "destructive action"),
    ("guarded event", dict(a=wp.State(on={"go": [wp.to("z", when=lambda d, p: 1)]}),
                           z=wp.Final()), "warning", "a", "on 'go' has only guarded"),
]


@pytest.mark.parametrize(("case", "states", "level", "where", "message"), CASES,
                         ids=[c[0] for c in CASES])
def test_each_machine_finding_has_its_broken_definition(case: str, states: dict[str, Any],
                                                        level: str, where: str,
                                                        message: str) -> None:
    findings = check(machine(**states))
    assert any(w == where and message in m for w, m in only(findings, level)), findings


def test_declared_events_that_no_state_handles_and_handlers_of_undeclared_ones() -> None:
    broken = type("Events", (wp.Machine,), {
        "__module__": __name__, "initial": "a", "events": ("go", "stop"),
        "a": wp.State(on={"go": "z", "halt": "z"}), "z": wp.Final()})
    assert only(check(broken), "error") == [
        (None, "event 'stop' is sent to the machine (events=) but no state handles it"),
        ("a", "on 'halt': not one of the events sent to the machine (events=); a typo?")]


def test_a_destructive_action_behind_a_waiting_state_is_fine() -> None:
    guarded = machine(a=wp.State(on={"approved": "b"}),
                      b=wp.State(wipe, done="z", errors={Exception: "z"}), z=wp.Final())
    assert check(guarded) == []


@wp.flow()
def unguarded_delete() -> None:
    wipe({})


@wp.flow()
def approved_delete() -> None:
    wp.gate("approve")
    wipe({})


@wp.task(timeout=10, retries=2, backoff=wp.Backoff(initial=5, jitter=False))
def slowish(x: int) -> int:
    return x


@wp.flow(deadline=timedelta(seconds=30))
def tight(x: int) -> int:
    return slowish(slowish(x))  # worst case per step: 3 x 10 s + 5 s + 10 s = 45 s


@wp.flow(deadline=timedelta(hours=1))
def roomy(x: int) -> int:
    return slowish(slowish(x))


def test_flow_findings() -> None:
    assert only(check(unguarded_delete), "error") == [
        ("wipe", "destructive step with neither a gate nor a compensation before it")]
    assert only(check(approved_delete), "error") == []
    [(path, message)] = only(check(tight), "error")
    assert path == "slowish -> slowish#2" and "worst case 90s" in message
    assert "deadline 30s" in message
    assert check(roomy) == []


def test_the_examples_are_clean() -> None:
    for module in (examples.orders, examples.payments):
        found = definitions(module)
        assert found
        for definition in found:
            assert check(definition) == [], definition


def test_graph_draws_a_machine_and_a_flow_as_mermaid() -> None:
    text = mermaid(examples.payments.Payment)
    assert text.startswith("stateDiagram-v2\n    [*] --> charging\n")
    for line in ("charging --> escalating: error CardDeclined",
                 "awaiting_a_person --> paused: after 4h",
                 "paused --> escalating: at 09:00 Europe/Paris", "paid --> [*]",
                 "class refunded failed"):
        assert f"    {line}\n" in text, line
    flow = mermaid(approved_delete)
    assert flow.startswith("flowchart TD\n")
    assert '    approve{{"gate approve"}}\n' in flow and "    approve -.-> wipe\n" in flow
