"""The machines of examples/payments.py, end to end on both stores."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

import waypost as wp
from examples.payments import Checkout, Payment

from .helpers import result_of, step_of, ts


def _until_state(engine: wp.Engine, run_id: str, state: str) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + 30
    while (view := engine.show(run_id))["state"] != state:
        assert time.monotonic() < deadline, f"never reached {state}: {view['state']}"
        time.sleep(0.05)
    return view


def test_checkout_waits_for_the_confirmation_before_shipping(engine: wp.Engine) -> None:
    run_id = engine.start(Checkout, {"order": 7}, key="order-7")
    with engine.serving() as worker:
        view = _until_state(engine, run_id, "awaiting_confirmation")
        waiting = step_of(view, "awaiting_confirmation#2")
        assert waiting["status"] == "waiting"
        assert ts(waiting["due_at"]) - time.time() > 3500, "it gives up after an hour"
        assert engine.send("order-7", "payment.maybe")["status"] == "ignored"
        sent = engine.send("order-7", "payment.confirmed", {"reference": "pay_123"},
                           id="pay_123")
        assert sent["status"] == "consumed"
        assert result_of(engine, worker, run_id)["shipped"] == "order 7 (payment pay_123)"
    assert engine.send("order-7", "payment.confirmed", id="pay_123")["duplicate"] is True


def test_payment_escalates_after_three_declines_and_a_person_retries(
        engine: wp.Engine) -> None:
    run_id = engine.start(Payment, {"order": 9, "amount": 1250, "card": "declined"})
    with engine.serving() as worker:
        view = _until_state(engine, run_id, "awaiting_a_person")
        assert step_of(view, "charging#1")["attempts"] == 3
        assert view["data"]["paged"] == "order 9: card of order 9 declined"
        waiting = step_of(view, "awaiting_a_person#3")
        assert 4 * 3600 - 60 < ts(waiting["due_at"]) - time.time() <= 4 * 3600
        engine.send(run_id, "retry", {"card": "renewed"}, id="ticket-1")
        output = result_of(engine, worker, run_id)
    assert output["charged"] == 1250
    view = engine.show(run_id)
    assert [t["to"] for t in view["transitions"]] == [
        "charging", "escalating", "awaiting_a_person", "charging", "paid"]
    assert view["dead_letters"] == []
    first, second = step_of(view, "charging#1"), step_of(view, "charging#4")
    assert first["idempotency_key"] != second["idempotency_key"]


class QuickPayment(Payment):
    """The same machine, with a person who is "offline" after a fraction of a second."""

    awaiting_a_person = wp.State(on={"retry": "charging", "refund": "refunded"},
                                 after=0.2, then="paused")


def test_an_unanswered_escalation_pauses_until_nine_in_paris(engine: wp.Engine) -> None:
    run_id = engine.start(QuickPayment, {"order": 3, "amount": 5, "card": "declined"})
    with engine.serving():
        view = _until_state(engine, run_id, "paused")
        engine.send(run_id, "refund", id="ticket-2")
        with pytest.raises(wp.RunFailed, match="failed state refunded"):
            engine.result(run_id, timeout=20)
    paused = step_of(view, "paused#4")
    due = datetime.fromisoformat(paused["due_at"]).astimezone(ZoneInfo("Europe/Paris"))
    assert (due.hour, due.minute, due.second) == (9, 0, 0)
    assert 0 < due.timestamp() - time.time() <= 86_400 + 3600  # a DST day has 25 hours
    assert [t["trigger"] for t in engine.show(run_id)["transitions"]] == [
        "start", "error", "done", "timer", "event"]
