"""Waiting for events (both stores): a flow's `wp.wait_for` gets the event whether it was
emitted before the wait started (since the run began) or after, only the one its match
names, and times out as it says; a machine takes its topics' events as its own, routed
by its data, even while an action runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import waypost as wp

from .helpers import join_listeners

GATE = threading.Event()


@wp.task
def open_order(order_id: str) -> dict[str, Any]:
    return {"id": order_id}


@wp.task
def held_up(order: dict[str, Any]) -> dict[str, Any]:
    GATE.wait(30)
    return order


@wp.task
def ship(order: dict[str, Any], paid: Any) -> dict[str, Any]:
    return {"order": order["id"], "paid": paid}


@wp.task
def charge(order: dict[str, Any]) -> None:
    wp.emit("wait.payment.confirmed", {"order": order["id"], "amount": 7})


@wp.flow
def pay_then_ship(order_id: str) -> Any:
    order = open_order(order_id)
    paid = wp.wait_for("wait.payment.confirmed", match={"order": order["id"]}, timeout=60)
    return ship(order, paid["payload"])


@wp.flow
def slow_then_wait(order_id: str) -> Any:
    order = held_up(open_order(order_id))
    paid = wp.wait_for("wait.payment.confirmed", match={"order": order["id"]})
    return ship(order, paid["payload"]["amount"])


@wp.flow
def charge_then_wait(order_id: str) -> Any:
    order = open_order(order_id)
    charge(order)
    paid = wp.wait_for("wait.payment.confirmed", match={"order": order_id})
    return ship(order, paid["payload"]["amount"])


@wp.flow
def wait_briefly(order_id: str, give_up: bool = False) -> Any:
    return wp.wait_for("wait.parcel.arrived", match={"parcel.id": order_id}, timeout=0.3)


@wp.flow
def wait_or_go_on(order_id: str) -> Any:
    return wp.wait_for("wait.parcel.arrived", match={"parcel.id": order_id}, timeout=0.3,
                       on_timeout="continue")


@wp.task
def assign_id(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("hold"):
        GATE.wait(30)
    return {"id": f"m-{data['ref']}"}


class PaidOrder(wp.Machine):
    initial = "placed"
    topics = {"mwait.payment.confirmed": {"order": "id"}}
    placed = wp.State(assign_id, done="awaiting")
    awaiting = wp.State(on={"mwait.payment.confirmed": "paid"})
    paid = wp.Final()


@pytest.fixture
def serving(engine: wp.Engine) -> Any:
    GATE.clear()
    with engine.serving() as worker:
        yield worker
    GATE.set()
    join_listeners()


def _step(engine: wp.Engine, run_id: str, name: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        steps = {s["name"]: s for s in engine.show(run_id)["steps"]}
        if steps.get(name, {}).get("status") == status or time.monotonic() > deadline:
            return steps[name]
        time.sleep(0.05)


def test_a_wait_gets_the_event_it_matches_emitted_after_it_started(
        engine: wp.Engine, serving: wp.Worker) -> None:
    run = engine.start(pay_then_ship, {"order_id": "a1"})
    step = _step(engine, run, "wait.payment.confirmed", "waiting")
    assert step["status"] == "waiting" and step["kind"] == "event"
    assert step["waiting"].startswith("for a matching event (wp.wait_for) (until ")
    engine.emit("wait.payment.confirmed", {"order": "other", "amount": 1})
    engine.emit("wait.payment.confirmed", {"amount": 2})  # no order: matches no wait
    time.sleep(0.3)
    assert engine.show(run)["status"] == "running"
    sent = engine.emit("wait.payment.confirmed", {"order": "a1", "amount": 3}, key="a1",
                       id="paid-a1")
    assert engine.result(run, timeout=30) == {"order": "a1",
                                              "paid": {"order": "a1", "amount": 3}}
    done = _step(engine, run, "wait.payment.confirmed", "succeeded")
    assert done["output"]["event"] == "paid-a1" and done["output"]["key"] == "a1"
    assert done["output"]["topic"] == "wait.payment.confirmed"
    assert sent["duplicate"] is False


def test_a_wait_gets_an_event_emitted_before_it_started_but_not_before_its_run(
        engine: wp.Engine, serving: wp.Worker) -> None:
    engine.emit("wait.payment.confirmed", {"order": "b1", "amount": 1}, id="too-early")
    run = engine.start(slow_then_wait, {"order_id": "b1"})
    _step(engine, run, "held_up", "running")
    engine.emit("wait.payment.confirmed", {"order": "b1", "amount": 5}, id="in-time")
    engine.emit("wait.payment.confirmed", {"order": "b1", "amount": 6}, id="second")
    GATE.set()  # now the wait starts, after its event
    assert engine.result(run, timeout=30) == {"order": "b1", "paid": 5}
    out = _step(engine, run, "wait.payment.confirmed", "succeeded")["output"]
    assert out["event"] == "in-time"  # the first since the run began, not the earlier one


def test_an_event_a_step_emits_is_there_for_the_wait_after_it(
        engine: wp.Engine, serving: wp.Worker) -> None:
    """The outbox and the wait in one transaction: the step's success stores the event,
    and the wait that this success starts finds it."""
    run = engine.start(charge_then_wait, {"order_id": "c1"})
    assert engine.result(run, timeout=30) == {"order": "c1", "paid": 7}


def test_a_wait_times_out_failing_or_going_on(engine: wp.Engine, serving: wp.Worker) -> None:
    failed = engine.start(wait_briefly, {"order_id": "d1"})
    with pytest.raises(wp.RunFailed, match="no event came in time"):
        engine.result(failed, timeout=30)
    going = engine.start(wait_or_go_on, {"order_id": "d2"})
    assert engine.result(going, timeout=30) is None
    # an event after the timeout changes nothing, and says nothing went wrong
    engine.emit("wait.parcel.arrived", {"parcel": {"id": "d1"}})
    assert engine.show(failed)["status"] == "failed"


def test_a_nested_match_and_a_cancelled_wait(engine: wp.Engine, serving: wp.Worker) -> None:
    run = engine.start(wait_briefly, {"order_id": "e1"})
    _step(engine, run, "wait.parcel.arrived", "waiting")
    engine.emit("wait.parcel.arrived", {"parcel": {"id": "e1", "weight": 2}}, id="parcel-e1")
    assert engine.result(run, timeout=30)["payload"]["parcel"]["weight"] == 2

    cancelled = engine.start(pay_then_ship, {"order_id": "e2"})
    _step(engine, cancelled, "wait.payment.confirmed", "waiting")
    engine.cancel(cancelled)
    engine.emit("wait.payment.confirmed", {"order": "e2", "amount": 1})
    assert engine.show(cancelled)["status"] == "cancelled"


def test_a_machine_takes_its_topics_events_routed_by_its_data(
        engine: wp.Engine, serving: wp.Worker) -> None:
    first = engine.start(PaidOrder, {"ref": "1"})
    other = engine.start(PaidOrder, {"ref": "2"})
    deadline = time.monotonic() + 30
    while engine.show(first).get("state") != "awaiting" and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.emit("mwait.payment.confirmed", {"order": "m-1", "amount": 9}, id="pay-m1")
    # the event's payload is merged into the data, as any event's is
    assert engine.result(first, timeout=30) == {"ref": "1", "id": "m-1", "order": "m-1",
                                                "amount": 9}
    assert engine.show(other)["status"] == "running"  # another order's run took nothing

    # an event for a run whose action still runs waits for the state that takes it
    held = engine.start(PaidOrder, {"ref": "3", "hold": True})
    time.sleep(0.3)
    engine.emit("mwait.payment.confirmed", {"order": "m-3"}, id="pay-m3-early")
    GATE.set()
    assert engine.result(held, timeout=30)["id"] == "m-3"
    engine.emit("mwait.payment.confirmed", {"order": "m-2"})
    assert engine.result(other, timeout=30)["id"] == "m-2"


def test_bad_waits_are_refused_when_the_flow_is_declared() -> None:
    with pytest.raises(wp.DefinitionError, match="is a step of a flow"):
        wp.wait_for("a.b")

    def bad(match: Any = None, topic: str = "a.b", **options: Any) -> Any:
        @wp.flow
        def f() -> Any:
            return wp.wait_for(topic, match=match, **options)
        return f.graph

    with pytest.raises(wp.DefinitionError, match="topic"):
        bad(topic="a b")
    with pytest.raises(wp.DefinitionError, match="payload fields"):
        bad(match={"a b": 1})
    with pytest.raises(wp.DefinitionError, match="on_timeout"):
        bad(on_timeout="approve")
    with pytest.raises(wp.DefinitionError, match="no state has on="):
        class Deaf(wp.Machine):
            initial = "a"
            topics = {"x.y": {"id": "id"}}
            a = wp.State(on={"other": "b"})
            b = wp.Final()


def test_check_and_graph_know_a_wait_for_an_event() -> None:
    from waypost.design.check import check
    from waypost.design.mermaid import flowchart

    # the wait is not taken for a task (only the real tasks lack timeouts)
    assert {f.where for f in check(pay_then_ship)} == {"open_order", "ship"}
    assert '>"wait for wait.payment.confirmed"]' in flowchart(pay_then_ship)
    assert [f for f in check(PaidOrder) if f.level == "error"] == []
