"""Flows with people and timers in them (`tests.flows.humans`): a refund behind an
approval gate, a nap, a division that can die, a task that escalates. Tasks record each
execution as a line in `<workdir>/<name>.log` (see `behaviour.mark`)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import waypost as wp
from tests.flows.behaviour import mark


@wp.task()
def unreserve(reservation: str, workdir: str, amount: int) -> None:
    mark(workdir, "unreserve")


@wp.task(compensate=unreserve)
def reserve_funds(workdir: str, amount: int) -> str:
    mark(workdir, "reserve_funds")
    return f"res-{amount}"


@wp.task(destructive=True)
def send_money(workdir: str, reservation: str) -> str:
    mark(workdir, "send_money")
    return f"sent {reservation}"


@wp.flow()
def refund(workdir: str, amount: int) -> str:
    reservation = reserve_funds(workdir, amount)
    wp.gate("approve-refund", timeout=timedelta(hours=4))
    return send_money(workdir, reservation)


@wp.task()
def wake(workdir: str) -> str:
    mark(workdir, "wake")
    return "awake"


@wp.flow()
def nap(workdir: str, seconds: float) -> str:
    wp.sleep(seconds)
    return wake(workdir)


@wp.task()
def divide(a: int, b: int) -> float:
    return a / b


@wp.flow()
def division(a: int, b: int) -> float:
    return divide(a, b)


@wp.task(escalate_after=1)
def flaky(workdir: str) -> str:
    if mark(workdir, "flaky") == 1 and not Path(workdir, "fixed").exists():
        raise ConnectionError("first call fails")
    return "ok"


@wp.flow()
def escalating(workdir: str) -> str:
    return flaky(workdir)


@wp.task()
def slow_refund(charge_id: str, workdir: str, booking: str) -> None:
    """The first execution hangs (the test kills its worker); later ones return."""
    if mark(workdir, "slow_refund") == 1:
        time.sleep(60)


@wp.task(compensate=slow_refund)
def take_payment(workdir: str, booking: str) -> str:
    mark(workdir, "take_payment")
    return "ch-9"


@wp.task()
def undo_booking(booking: str, workdir: str) -> None:
    mark(workdir, "undo_booking")


@wp.task(compensate=undo_booking)
def book(workdir: str) -> str:
    mark(workdir, "book")
    return "bk-1"


@wp.task()
def deliver(workdir: str, charge_id: str) -> None:
    raise wp.Fatal("no courier")


@wp.flow()
def paid_delivery(workdir: str) -> None:
    return deliver(workdir, take_payment(workdir, book(workdir)))
