"""Events and timers of state machines (both stores): an event is stored before `send`
returns, once per event id; a waiting state takes it, ignores it, defers it to a later
state, or records it as unhandled; an event sent while an action runs waits for the
transition; a timer moves a state that nobody sent anything to."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import waypost as wp

from .helpers import result_of


@wp.task()
def ship(data: dict[str, Any]) -> dict[str, Any]:
    return {"shipped": True}


class Order(wp.Machine):
    initial = "awaiting_payment"
    awaiting_payment = wp.State(
        on={"paid": [wp.to("shipping", when=lambda data, p: p["amount"] >= data["total"]),
                     "awaiting_payment"],
            "cancel": "cancelled"})
    shipping = wp.State(ship, done="shipped")
    shipped = wp.Final()
    cancelled = wp.Final(failed=True)


def test_events_move_a_waiting_machine_and_are_stored_once_per_id(engine: wp.Engine) -> None:
    run_id = engine.start(Order, {"total": 10}, key="order-1")
    short = engine.send("order-1", "paid", {"amount": 4}, id="pay-1")
    assert (short["run_id"], short["status"], short["duplicate"]) == (run_id, "consumed", False)
    again = engine.send("order-1", "paid", {"amount": 4}, id="pay-1")
    assert (again["event"], again["duplicate"]) == (short["event"], True)
    assert engine.send(run_id, "paid", {"amount": 10})["status"] == "consumed"
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == {"total": 10, "amount": 10, "shipped": True}
    view = engine.show(run_id)
    assert [(t["from"], t["to"], t["trigger"], t["event_id"]) for t in view["transitions"]] == [
        (None, "awaiting_payment", "start", None),
        ("awaiting_payment", "awaiting_payment", "event", "pay-1"),
        ("awaiting_payment", "shipping", "event", None), ("shipping", "shipped", "done", None)]
    assert [(e["name"], e["status"], e["state"]) for e in view["events"]] == [
        ("paid", "consumed", "awaiting_payment"), ("paid", "consumed", "awaiting_payment")]
    assert [(s["name"], s["status"]) for s in view["steps"]] == [
        ("awaiting_payment#1", "succeeded"), ("awaiting_payment#2", "succeeded"),
        ("shipping#3", "succeeded")]


def test_an_event_is_refused_clearly_by_a_run_that_cannot_take_it(engine: wp.Engine) -> None:
    with pytest.raises(wp.UnknownTargetError):
        engine.send("no-such-run-or-key", "paid")
    run_id = engine.start(Order, {"total": 1})
    engine.send(run_id, "cancel")
    with pytest.raises(wp.RunFailed):
        engine.result(run_id, timeout=10)
    with pytest.raises(wp.InputError, match="has ended"):
        engine.send(run_id, "paid", {"amount": 1})
    with pytest.raises(wp.InputError, match="must be JSON"):
        engine.send(run_id, "paid", {1, 2})
    assert len(engine.show(run_id)["events"]) == 1, "a refused event is not stored"


@wp.task()
def slow(data: dict[str, Any], path: str = "") -> dict[str, Any]:
    gate = Path(data["gate"])
    deadline = time.monotonic() + 20
    while gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"worked": True}


class Policies(wp.Machine):
    initial = "working"
    working = wp.State(slow, done="strict")
    strict = wp.State(on={"next": "lenient"})  # unhandled events are errors (the default)
    lenient = wp.State(on={"next": "patient"}, unhandled="ignore")
    patient = wp.State(on={"next": "finishing"}, unhandled="defer")
    finishing = wp.State(on={"late": "done"})
    done = wp.Final()


def test_unhandled_events_per_state_and_an_event_during_the_action(
        engine: wp.Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("")
    run_id = engine.start(Policies, {"gate": str(gate)})
    with engine.serving() as worker:
        deadline = time.monotonic() + 20
        while engine.show(run_id)["steps"][0]["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        during = engine.send(run_id, "next", {"n": 1})
        assert during["status"] == "pending", "it waits for the action's transition"
        gate.unlink()
        deadline = time.monotonic() + 20
        while engine.show(run_id)["state"] != "lenient":
            assert time.monotonic() < deadline, "the pending event moved the next state"
            time.sleep(0.02)
        assert engine.send(run_id, "stray")["status"] == "ignored"
        assert engine.send(run_id, "next")["status"] == "consumed"
        assert engine.send(run_id, "late")["status"] == "deferred"
        assert engine.send(run_id, "next")["status"] == "consumed"  # patient -> finishing,
        assert result_of(engine, worker, run_id)["worked"] is True  # which takes `late`
    view = engine.show(run_id)
    assert [(e["name"], e["status"], e["state"]) for e in view["events"]] == [
        ("next", "consumed", "strict"), ("stray", "ignored", "lenient"),
        ("next", "consumed", "lenient"), ("late", "consumed", "finishing"),
        ("next", "consumed", "patient")]
    # in strict, an event it has no transition for is kept as unhandled, and shown
    run_id = engine.start(Policies, {"gate": str(tmp_path / "absent")})
    with engine.serving():
        deadline = time.monotonic() + 20
        while engine.show(run_id)["state"] != "strict":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert engine.send(run_id, "oops")["status"] == "unhandled"
    assert engine.show(run_id)["events"][0]["status"] == "unhandled"


class Reminder(wp.Machine):
    initial = "waiting"
    waiting = wp.State(on={"answered": "done"}, after=0.3, then="reminded")
    reminded = wp.State(on={"answered": "done"}, after=60, then="gave_up")
    done = wp.Final()
    gave_up = wp.Final(failed=True)


def test_a_timer_moves_a_state_nobody_answered_and_an_event_beats_the_next_timer(
        engine: wp.Engine) -> None:
    run_id = engine.start(Reminder, {})
    with engine.serving():
        deadline = time.monotonic() + 20
        while engine.show(run_id)["state"] != "reminded":
            assert time.monotonic() < deadline, "the 0.3 s timer never fired"
            time.sleep(0.05)
        assert engine.send(run_id, "answered")["status"] == "consumed"
        assert engine.result(run_id, timeout=10) == {}, "the 60 s timer does not hold it"
    view = engine.show(run_id)
    assert [(t["from"], t["to"], t["trigger"]) for t in view["transitions"]] == [
        (None, "waiting", "start"), ("waiting", "reminded", "timer"),
        ("reminded", "done", "event")]
    assert [s["status"] for s in view["steps"]] == ["succeeded", "succeeded"]
