"""A machine that could never run is refused when its class is declared, with the state
and the reason; one that runs stores a body that a process with other code recognises as
not its own."""

from __future__ import annotations

from typing import Any

import pytest

import waypost as wp
from waypost import codec
from waypost.runtime.seam import (
    DECIDE_EVENT,
    Consume,
    DecideLater,
    FinishRun,
    SignalArrived,
    StepSucceeded,
    Transition,
    load_driver,
)


@wp.task()
def act(data: dict[str, Any]) -> None:
    return None


@wp.task()
def takes_two(a: int, b: int) -> None:
    return None


def declare(**attrs: Any) -> type[wp.Machine]:
    return type("Bad", (wp.Machine,), {"__module__": __name__, **attrs})


@pytest.mark.parametrize(("attrs", "message"), [
    ({"initial": "a"}, "declares no state"),
    ({"initial": "nowhere", "a": wp.Final()}, "initial = 'nowhere' is not one of its states"),
    ({"initial": "a", "a": wp.State(act, done="b")}, "state a: done goes to 'b'"),
    ({"initial": "a", "a": wp.State(act, done="z", errors={KeyError: "y"}), "z": wp.Final()},
     "errors send KeyError to 'y'"),
    ({"initial": "a", "a": wp.State(len, done="z"), "z": wp.Final()},  # type: ignore[arg-type]
     "the action must be a @wp.task"),
    ({"initial": "a", "a": wp.State(takes_two, done="z"), "z": wp.Final()},
     "task takes_two: missing a required argument"),
    ({"initial": "a", "a": wp.State(act, done="z", retries=-1), "z": wp.Final()},
     "retries must be >= 0"),
])
def test_a_machine_that_cannot_run_is_refused_at_declaration(attrs: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(wp.DefinitionError) as refused:
        declare(**attrs)
    assert message in str(refused.value)


class Shipping(wp.Machine):
    name = "tests.shipping"
    initial = "packing"
    packing = wp.State(act, done=[wp.to("sent", when=lambda data, result: True), "sent"])
    sent = wp.Final()


class _Facts:
    run_id = "r1"
    params: dict[str, Any] = {}

    def outputs(self, steps: Any) -> dict[str, str | None]:
        return {"packing#1": "null"}

    def machine(self) -> tuple[str | None, str | None, int]:
        return "packing", "{}", 1


def test_a_run_whose_guards_are_not_this_process_code_is_decided_where_they_are() -> None:
    """A process with other code (the class changed, or a shell without it) does not fail
    the run: it leaves the decision, and a process with the run's own class makes it."""
    body = codec.loads(Shipping.body)
    body["states"]["packing"]["options"]["timeout"] = 5.0  # the class changed since
    other = load_driver("machine", codec.dumps(body))
    ended = StepSucceeded("packing#1", "packing", "task")
    assert other.decide(_Facts(), ended) == [DecideLater("packing#1", "task")]  # type: ignore[arg-type]
    later = SignalArrived(DECIDE_EVENT, codec.dumps({"step": "packing#1", "kind": "task"}),
                          7, "decide:packing#1")
    assert other.decide(_Facts(), later) == []  # type: ignore[arg-type]
    same = load_driver("machine", Shipping.body)
    assert same.guards is Shipping.guards
    moved, finish = same.decide(_Facts(), later)  # type: ignore[arg-type]
    assert isinstance(moved, Transition) and (moved.to, moved.event) == ("sent", 7)
    assert isinstance(finish, FinishRun), "the step's end was counted: the run ends here"
    gone = SignalArrived(DECIDE_EVENT, codec.dumps({"step": "packing#0", "kind": "task"}),
                         8, None)
    assert same.decide(_Facts(), gone) == [Consume(8, "ignored")]  # type: ignore[arg-type]


def test_a_machine_is_started_by_the_engine_not_instantiated() -> None:
    with pytest.raises(wp.DefinitionError, match=r"engine\.start"):
        Shipping()
