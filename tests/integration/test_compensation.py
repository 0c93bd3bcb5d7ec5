"""Sagas (both stores): when a run fails, is cancelled or misses its deadline, the
compensations of its succeeded steps run in reverse order of completion, each a durable step
with its own retries, given the original output and input."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import waypost as wp

from .helpers import step_of

QUICK = wp.Backoff(initial=0.01, jitter=False)


def note(log: str, line: str) -> None:
    with open(log, "a") as f:
        f.write(line + "\n")


def lines(log: str | Path) -> list[str]:
    path = Path(log)
    return path.read_text().splitlines() if path.exists() else []


@wp.task()
def release(reservation: str, log: str, item: str) -> None:
    note(log, f"release {reservation} of {item}")


@wp.task(compensate=release)
def reserve(log: str, item: str) -> str:
    note(log, f"reserve {item}")
    return f"res-{item}"


@wp.task(retries=2, backoff=QUICK)
def refund(charge_id: str, log: str, amount: int, reservation: str) -> None:
    if not any(line.startswith("refund-tried") for line in lines(log)):
        note(log, "refund-tried")
        raise RuntimeError("payments API timeout")  # retried under refund's own policy
    note(log, f"refund {charge_id} {amount} for {reservation}")


@wp.task(compensate=refund)
def charge(log: str, amount: int, reservation: str) -> str:
    note(log, f"charge {amount}")
    return "ch-1"


@wp.task()
def ship(log: str, charge_id: str) -> str:
    note(log, "ship")
    raise wp.Fatal("carrier refused the parcel")


@wp.flow()
def saga(log: str) -> str:
    reservation = reserve(log, "book")
    return ship(log, charge(log, 30, reservation))


def _wait_status(engine: wp.Engine, run_id: str, wanted: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while engine.status(run_id) != wanted:
        assert time.monotonic() < deadline, f"run is {engine.status(run_id)}, not {wanted}"
        time.sleep(0.02)


def test_a_three_step_saga_failing_at_step_3_compensates_2_then_1(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(saga, {"log": log})
    with engine.serving():
        _wait_status(engine, run_id, "compensated")
    assert lines(log) == ["reserve book", "charge 30", "ship", "refund-tried",
                          "refund ch-1 30 for res-book", "release res-book of book"]
    view = engine.show(run_id)
    assert view["status"] == "compensated"
    assert view["error"]["step"] == "ship"  # why it was undone stays on the run
    undo_charge = step_of(view, "compensate:charge")
    undo_reserve = step_of(view, "compensate:reserve")
    assert undo_charge["compensates"] == "charge" and undo_charge["status"] == "succeeded"
    assert undo_charge["attempts"] == 2  # its own retry policy, not charge's
    assert undo_charge["input"] == {"args": ["ch-1", log, 30, "res-book"], "kwargs": {}}
    assert undo_charge["finished_at"] <= undo_reserve["started_at"]
    with pytest.raises(wp.RunFailed):
        engine.result(run_id)


@wp.task()
def broken_release(reservation: str, log: str, item: str) -> None:
    note(log, "release attempt")
    if "fixed" not in lines(log):
        raise RuntimeError("inventory service down")
    note(log, f"released {reservation}")


@wp.task(compensate=broken_release)
def reserve_fragile(log: str, item: str) -> str:
    return f"res-{item}"


@wp.task()
def refund_never(charge_id: str, log: str, amount: int, reservation: str) -> None:
    raise RuntimeError("refunds are disabled")


@wp.task(compensate=refund_never)
def charge_fragile(log: str, amount: int, reservation: str) -> str:
    return "ch-2"


@wp.flow()
def fragile_saga(log: str) -> str:
    return ship(log, charge_fragile(log, 5, reserve_fragile(log, "pen")))


def test_a_failed_compensation_waits_for_an_operator_who_retries_or_skips(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(fragile_saga, {"log": log})
    with engine.serving():
        _wait_status(engine, run_id, "compensation_failed")
        view = engine.show(run_id)
        assert step_of(view, "compensate:charge_fragile")["status"] == "failed"
        assert step_of(view, "compensate:reserve_fragile")["status"] == "pending"
        with pytest.raises(wp.InputError, match="is succeeded"):
            engine.retry_step(run_id, "charge_fragile")

        engine.skip_step(run_id, "compensate:charge_fragile", {"refunded": "by hand"},
                         by="alice")
        _wait_status(engine, run_id, "compensation_failed")  # release fails next
        assert "release attempt" in lines(log)
        note(log, "fixed")
        engine.retry_step(run_id, "compensate:reserve_fragile", by="alice")
        _wait_status(engine, run_id, "compensated")
    view = engine.show(run_id)
    skipped = step_of(view, "compensate:charge_fragile")
    assert skipped["output"] == {"refunded": "by hand"}
    assert [(h["outcome"], h["worker"]) for h in skipped["history"]][-1] == ("skipped", "alice")
    assert "released res-pen" in lines(log)


@wp.task()
def hold(log: str) -> str:
    note(log, "hold")
    return "held"


@wp.task()
def unhold(output: str, log: str) -> None:
    note(log, f"unhold {output}")


@wp.task(compensate=unhold)
def hold_seat(log: str) -> str:
    return hold(log)


@wp.task()
def fly(log: str) -> None:
    note(log, "fly")


@wp.flow()
def trip(log: str) -> None:
    hold_seat(log)
    wp.gate("confirm", timeout=timedelta(minutes=5))
    fly(log)


@wp.flow(deadline=timedelta(seconds=1))
def hurried_trip(log: str) -> None:
    hold_seat(log)
    wp.sleep(timedelta(seconds=30))
    fly(log)


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_cancel_and_a_missed_deadline_run_the_compensations(
        engine: wp.Engine, tmp_path: Path, how: str) -> None:
    log = str(tmp_path / "log")
    flow: Any = trip if how == "cancel" else hurried_trip
    run_id = engine.start(flow, {"log": log})
    with engine.serving(lease=1.5):
        deadline = time.monotonic() + 10
        while "hold" not in lines(log) or engine.status(run_id) != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        if how == "cancel":
            time.sleep(0.2)
            engine.cancel(run_id, "customer changed plans")
        _wait_status(engine, run_id, "compensated")
    assert lines(log) == ["hold", "unhold held"]
    view = engine.show(run_id)
    assert view["error"]["type"] == ("Cancelled" if how == "cancel" else "DeadlineExceeded")
    assert step_of(view, "fly")["status"] == "cancelled"


def test_compensate_must_be_a_task_that_accepts_the_output_and_the_input() -> None:
    def plain(output: str, log: str) -> None: ...

    def booking(log: str) -> str:
        return log

    with pytest.raises(wp.DefinitionError, match=r"takes a @wp\.task"):
        wp.task(compensate=plain)(booking)  # type: ignore[arg-type]

    @wp.task()
    def too_narrow(output: str) -> None: ...

    @wp.task(compensate=too_narrow)
    def books(log: str) -> str:
        return log

    @wp.flow()
    def misfit(log: str) -> str:
        return books(log)

    with pytest.raises(wp.DefinitionError, match="too_narrow"):
        _ = misfit.graph
