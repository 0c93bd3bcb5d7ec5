"""Event chains (both stores): handlers chained by the events they emit, with a fan-out;
one answer to "did it complete?" from `trace`; dead letters replayed; the outbox (an
attempt's events commit with its success, never with its failure); one event per id;
same-key order; a handler added later catching up with a replay."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import waypost as wp

from .helpers import join_listeners

#: What handlers saw, by handler.
SEEN: dict[str, list[Any]] = {}
GATE = threading.Event()
BROKEN: set[str] = set()
ATTEMPTS: dict[str, int] = {}


def _saw(name: str, value: Any) -> None:
    SEEN.setdefault(name, []).append(value)


@wp.on("chain.order.placed")
def reserve(order: dict[str, Any]) -> str:
    wp.emit("chain.stock.reserved", order, key=order["id"])
    return "reserved"


@wp.on("chain.stock.*")
def bill(order: dict[str, Any]) -> str:
    if order.get("fail") == "bill" or order["id"] in BROKEN:
        raise RuntimeError(f"card declined for {order['id']}")
    if order.get("wait"):
        GATE.wait(30)
    wp.emit("chain.payment.taken", order)
    return "billed"


@wp.on("chain.stock.reserved")
def notify(order: dict[str, Any]) -> str:
    _saw("notify", order["id"])
    return "notified"


@wp.on("chain.payment.**")
def ship(order: dict[str, Any]) -> str:
    _saw("ship", order["id"])
    return "shipped"


@wp.on("outbox.work", retries=1)
def flaky(item: dict[str, Any]) -> None:
    ATTEMPTS[item["id"]] = ATTEMPTS.get(item["id"], 0) + 1
    wp.emit("outbox.done", {"id": item["id"], "attempt": ATTEMPTS[item["id"]]})
    if ATTEMPTS[item["id"]] == 1:
        raise RuntimeError("failed after emitting")


@wp.on("outbox.done")
def done(item: dict[str, Any]) -> None:
    _saw("done", item)


@wp.on("lane.step")
def in_order(item: dict[str, Any]) -> None:
    time.sleep(0.005)
    _saw(f"lane-{item['key']}", item["n"])


@wp.on("late.news")
def late(item: dict[str, Any]) -> None:
    _saw("late", item["n"])


@pytest.fixture
def serving(engine: wp.Engine) -> Any:
    SEEN.clear()
    BROKEN.clear()
    ATTEMPTS.clear()
    GATE.clear()
    with engine.serving() as worker:
        yield worker
    GATE.set()
    join_listeners()


def _settled(engine: wp.Engine, ident: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = engine.trace(ident)
        if found["status"] != "in_progress" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _runs(node: dict[str, Any]) -> list[dict[str, Any]]:
    found = [node] if node["type"] == "run" else []
    for child in node.get("children", []):
        found += _runs(child)
    return found


def test_a_chain_with_a_fan_out_runs_end_to_end_and_traces_complete(
        engine: wp.Engine, serving: wp.Worker) -> None:
    sent = engine.emit("chain.order.placed", {"id": "o1"}, id="order-o1")
    assert (sent["duplicate"], sent["deliveries"]) == (False, 1)
    found = _settled(engine, "order-o1")
    assert found["status"] == "complete", found["summary"]
    assert found["summary"].startswith("complete: 4 runs")
    [root] = found["roots"]
    assert (root["type"], root["topic"], root["id"]) == ("event", "chain.order.placed",
                                                         "order-o1")
    [reserve_run] = root["children"]
    assert reserve_run["definition"].endswith(":reserve")
    [reserved] = reserve_run["children"]
    assert reserved["topic"] == "chain.stock.reserved"
    assert reserved["emitted_by"] == {"run": reserve_run["id"], "step": "reserve"}
    assert sorted(r["definition"].rsplit(":", 1)[1] for r in reserved["children"]) == [
        "bill", "notify"]  # the fan-out
    assert sorted(r["definition"].rsplit(":", 1)[1] for r in _runs(root)) == [
        "bill", "notify", "reserve", "ship"]
    assert SEEN == {"notify": ["o1"], "ship": ["o1"]}
    # every id of the chain names the same trace: a delivery's run, the correlation id
    assert engine.trace(reserve_run["id"])["correlation_id"] == "order-o1"
    assert engine.trace(reserved["id"])["status"] == "complete"
    # a delivery is a run like any other, which says what started it
    assert engine.result(reserve_run["id"]) == "reserved"
    started_by = engine.show(reserve_run["id"])["trigger"]
    assert (started_by["event"], started_by["topic"]) == ("order-o1", "chain.order.placed")
    assert engine.show(reserved["children"][0]["id"])["trigger"]["topic"] == \
        "chain.stock.reserved"
    # emitting the same id again stores nothing and delivers nothing
    again = engine.emit("chain.order.placed", {"id": "o1"}, id="order-o1")
    assert again["duplicate"] is True and again["seq"] == sent["seq"]
    assert len(_runs(engine.trace("order-o1")["roots"][0])) == 4


def test_trace_says_in_progress_then_failed_naming_what_and_where(
        engine: wp.Engine, serving: wp.Worker) -> None:
    engine.emit("chain.order.placed", {"id": "o2", "wait": True}, id="order-o2")
    deadline = time.monotonic() + 20
    while True:
        found = engine.trace("order-o2")
        if any(r["definition"].endswith(":bill") and r["status"] == "running"
               for r in _runs(found["roots"][0])) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert found["status"] == "in_progress"
    assert ":bill" in found["summary"] and "running" in found["summary"]
    GATE.set()
    assert _settled(engine, "order-o2")["status"] == "complete"

    engine.emit("chain.order.placed", {"id": "o3", "fail": "bill"}, id="order-o3")
    failed = _settled(engine, "order-o3")
    assert failed["status"] == "failed"
    assert ":bill" in failed["summary"] and "at step bill" in failed["summary"]
    assert "card declined for o3" in failed["summary"]
    assert "ship" not in SEEN.get("ship", [])  # nothing after the failure ran


def test_a_handler_out_of_retries_is_a_dead_letter_and_its_replay_goes_on(
        engine: wp.Engine, serving: wp.Worker) -> None:
    BROKEN.add("o4")
    engine.emit("chain.order.placed", {"id": "o4"}, id="order-o4")
    assert _settled(engine, "order-o4")["status"] == "failed"
    [letter] = [d for d in engine.dead_letters() if d["task"].endswith(":bill")]
    assert letter["input"] == {"args": [{"id": "o4"}], "kwargs": {}}
    BROKEN.clear()
    engine.replay(letter["id"], by="tester")
    found = _settled(engine, "order-o4")
    assert found["status"] == "complete", found["summary"]
    assert SEEN.get("ship") == ["o4"]


def test_an_attempt_that_fails_after_emitting_emits_nothing(
        engine: wp.Engine, serving: wp.Worker) -> None:
    engine.emit("outbox.work", {"id": "w1"}, id="work-w1")
    found = _settled(engine, "work-w1")
    assert found["status"] == "complete", found["summary"]
    assert ATTEMPTS == {"w1": 2}
    # the first attempt emitted, then failed: only the second attempt's event exists
    assert SEEN["done"] == [{"id": "w1", "attempt": 2}]
    assert found["events"] == 2


def test_events_with_one_key_reach_a_handler_in_order(
        engine: wp.Engine, serving: wp.Worker) -> None:
    engine.emit_many([("lane.step", {"key": key, "n": n}, key, f"lane-{key}-{n}")
                      for n in range(15) for key in ("a", "b")])
    deadline = time.monotonic() + 30
    while (len(SEEN.get("lane-a", [])) < 15 or len(SEEN.get("lane-b", [])) < 15) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert SEEN["lane-a"] == list(range(15))
    assert SEEN["lane-b"] == list(range(15))


def test_a_replay_delivers_what_came_before_a_handler_existed(engine: wp.Engine) -> None:
    SEEN.clear()
    before = time.time() - 1
    for n in range(3):  # no worker has started: `late` has no subscription yet
        assert engine.emit("late.news", {"n": n})["deliveries"] == 0
    with engine.serving():
        engine.emit("late.news", {"n": 3})  # after it subscribed: delivered
        deadline = time.monotonic() + 10
        while SEEN.get("late") != [3] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert SEEN.get("late") == [3]
        with pytest.raises(wp.UnknownTargetError):
            engine.replay_topic("nobody", before)
        name = late.name
        assert engine.replay_topic(name, before) >= 4
        deadline = time.monotonic() + 20
        while len(SEEN.get("late", [])) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    join_listeners()
    # once each, the one it had not again (without a key, in no particular order)
    assert SEEN["late"][0] == 3 and sorted(SEEN["late"][1:]) == [0, 1, 2]


def test_bad_events_are_refused_where_they_are_emitted(engine: wp.Engine) -> None:
    with pytest.raises(wp.InputError, match="from inside a task"):
        wp.emit("a.b", {})
    with pytest.raises(wp.InputError, match="topic"):
        engine.emit("not a topic", {})
    with pytest.raises(wp.InputError, match="waypost's own"):
        engine.emit("waypost.run", {})
    with pytest.raises(wp.InputError, match="JSON"):
        engine.emit("a.b", {"x": object()})
    with pytest.raises(wp.DefinitionError, match="pattern"):
        wp.on("a..b")


@wp.task()
def pack(order_id: str) -> str:
    return f"packed {order_id}"


@wp.flow(trigger="trig.order.placed")
def fulfil(order_id: str, express: bool = False) -> Any:
    return pack(order_id)


@wp.task()
def pay_back(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "paid_back": True}


class Refund(wp.Machine):
    trigger = "trig.refund.*"
    initial = "refunding"
    refunding = wp.State(pay_back, done="refunded")
    refunded = wp.Final()


def test_events_start_flows_and_machines_once_per_event(
        engine: wp.Engine, serving: wp.Worker) -> None:
    engine.emit("trig.order.placed", {"order_id": "o9"}, id="placed-o9")
    found = _settled(engine, "placed-o9")
    assert found["status"] == "complete", found["summary"]
    [run] = found["roots"][0]["children"]
    assert run["definition"] == fulfil.name
    assert engine.result(run["id"]) == "packed o9"
    assert engine.show(run["id"])["input"] == {"order_id": "o9", "express": False}

    engine.emit("trig.refund.asked", {"amount": 5}, id="refund-1")
    found = _settled(engine, "refund-1")
    assert found["status"] == "complete", found["summary"]
    [run] = found["roots"][0]["children"]
    assert engine.result(run["id"]) == {"amount": 5, "paid_back": True}

    # a payload that does not fit the flow is a failed run that says why, not a lost event
    engine.emit("trig.order.placed", {"id": "o10"}, id="placed-o10")
    failed = _settled(engine, "placed-o10")
    assert failed["status"] == "failed"
    assert "does not fit" in failed["summary"]
