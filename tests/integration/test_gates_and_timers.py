"""Approval gates, durable sleeps and ordering without data (both stores): downstream waits
with nothing held, decisions are recorded with who and when, timers fire once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import waypost as wp
from waypost.dag.waits import due_at

from .helpers import step_of, ts

LEASE = 1.5  # the sweeper, which fires timers, then runs every half second


def note(log: str, line: str) -> None:
    with open(log, "a") as f:
        f.write(line + "\n")


def lines(log: str) -> list[str]:
    path = Path(log)
    return path.read_text().splitlines() if path.exists() else []


@wp.task()
def prepare(log: str, amount: int) -> dict[str, Any]:
    note(log, "prepare")
    return {"amount": amount}


@wp.task(destructive=True)
def pay_out(log: str, refund: dict[str, Any]) -> str:
    note(log, f"pay {refund['amount']}")
    return "paid"


@wp.flow()
def refund_flow(log: str, amount: int) -> str:
    refund = prepare(log, amount)
    wp.gate("approve-refund", timeout=timedelta(hours=4))
    return pay_out(log, refund)


def _flow_with_timeout(on_timeout: str) -> wp.Flow[Any, Any]:
    @wp.flow(name=f"gate-times-out-{on_timeout}")
    def timed(log: str, amount: int) -> str:
        refund = prepare(log, amount)
        wp.gate("approve-refund", timeout=0.3, on_timeout=on_timeout)
        return pay_out(log, refund)

    return timed


def _until(engine: wp.Engine, run_id: str, step: str, status: str,
           timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = engine.show(run_id)
        if step_of(view, step)["status"] == status:
            return view
        assert time.monotonic() < deadline, f"{step} is {step_of(view, step)['status']}"
        time.sleep(0.02)


def test_downstream_waits_for_approval_which_records_who_and_when(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(refund_flow, {"log": log, "amount": 40})
    with engine.serving(lease=LEASE) as worker:
        view = _until(engine, run_id, "approve-refund", "waiting")
        gate = step_of(view, "approve-refund")
        assert gate["after"] == ["prepare"] and gate["needs"] == []
        assert gate["waiting"].startswith("for approval: waypost approve RUN approve-refund")
        assert gate["due_at"] is not None
        payout = step_of(view, "pay_out")
        assert payout["status"] == "pending" and payout["destructive"] is True
        assert payout["needs"] == ["prepare"] and payout["after"] == ["approve-refund"]
        time.sleep(0.3)
        assert lines(log) == ["prepare"]
        claimed_before = worker.stats.claimed
        with pytest.raises(wp.InputError, match="not a gate"):
            engine.approve(run_id, "prepare")
        with pytest.raises(wp.UnknownTargetError, match="no step 'nope'"):
            engine.approve(run_id, "nope")

        engine.approve(run_id, "approve-refund", by="bob")
        assert engine.result(run_id, timeout=15) == "paid"
        assert worker.stats.claimed == claimed_before + 1  # the gate never took a worker
    with pytest.raises(wp.InputError, match="already decided"):
        engine.approve(run_id, "approve-refund", by="bob")
    gate = step_of(engine.show(run_id), "approve-refund")
    assert gate["status"] == "succeeded"
    assert gate["output"]["approved"] is True and gate["output"]["by"] == "bob"
    assert abs(ts(gate["output"]["at"]) - ts(gate["finished_at"])) < 1
    assert [(h["outcome"], h["worker"]) for h in gate["history"]] == [("approved", "bob")]


def test_a_rejected_gate_fails_the_run_and_nothing_after_it_runs(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(refund_flow, {"log": log, "amount": 40})
    with engine.serving(lease=LEASE):
        _until(engine, run_id, "approve-refund", "waiting")
        engine.reject(run_id, "approve-refund", reason="looks like fraud", by="carol")
        with pytest.raises(wp.RunFailed, match="looks like fraud"):
            engine.result(run_id, timeout=15)
    view = engine.show(run_id)
    assert view["error"]["step"] == "approve-refund"
    assert view["error"]["type"] == "GateRejected"
    assert step_of(view, "pay_out")["status"] == "upstream_failed"
    assert lines(log) == ["prepare"]


@pytest.mark.parametrize("on_timeout", ["fail", "approve", "escalate"])
def test_a_gate_nobody_decides_follows_its_on_timeout(
        engine: wp.Engine, tmp_path: Path, on_timeout: str) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(_flow_with_timeout(on_timeout), {"log": log, "amount": 7})
    with engine.serving(lease=LEASE):
        if on_timeout == "fail":
            with pytest.raises(wp.RunFailed, match="not approved in time"):
                engine.result(run_id, timeout=15)
            assert lines(log) == ["prepare"]
        elif on_timeout == "approve":
            assert engine.result(run_id, timeout=15) == "paid"
            gate = step_of(engine.show(run_id), "approve-refund")
            assert gate["output"]["by"] is None and gate["output"]["reason"] == "timeout"
        else:
            view = _until(engine, run_id, "approve-refund", "needs_attention")
            assert view["status"] == "needs_attention"
            assert [r["id"] for r in engine.runs(status="needs_attention")] == [run_id]
            engine.approve(run_id, "approve-refund", by="dave")
            assert engine.result(run_id, timeout=15) == "paid"


@wp.task()
def stamp(log: str, label: str) -> float:
    note(log, label)
    return time.time()


@wp.flow()
def nap(log: str) -> float:
    stamp(log, "before")
    wp.sleep(timedelta(seconds=0.6))
    return stamp(log, "after")


def test_a_sleep_orders_the_flow_and_lasts_at_least_its_duration(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(nap, {"log": log})
    with engine.serving(lease=LEASE):
        engine.result(run_id, timeout=15)
    view = engine.show(run_id)
    before, sleep, after = (step_of(view, n) for n in ("stamp", "sleep", "stamp#2"))
    assert sleep["after"] == ["stamp"] and after["after"] == ["sleep"]
    assert ts(sleep["finished_at"]) - ts(before["finished_at"]) >= 0.6
    assert ts(after["started_at"]) >= ts(sleep["finished_at"])
    assert lines(log) == ["before", "after"]


@wp.flow()
def wake_later(log: str) -> float:
    wp.sleep(0.5)
    return stamp(log, "woke")


def test_a_sleep_due_while_no_worker_runs_fires_once_when_workers_return(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(wake_later, {"log": log})
    assert step_of(engine.show(run_id), "sleep")["status"] == "waiting"
    time.sleep(1.0)  # due, with no worker anywhere
    assert engine.status(run_id) == "running"  # its timer runs, though no task has
    with engine.serving(lease=LEASE), engine.serving(lease=LEASE):  # two sweepers
        engine.result(run_id, timeout=15)
    view = engine.show(run_id)
    assert lines(log) == ["woke"]
    assert step_of(view, "sleep")["output"]["woke_at"] is not None
    assert step_of(view, "stamp")["attempts"] == 1


@wp.task()
def audit(log: str, what: str) -> None:
    note(log, f"audit {what}")


@wp.flow()
def explicit_order(log: str) -> None:
    first = audit(log, "one")
    with wp.after(first):
        audit(log, "two")
        audit(log, "three")


def test_wp_after_orders_steps_without_passing_data(engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    run_id = engine.start(explicit_order, {"log": log})
    with engine.serving(lease=LEASE):
        engine.result(run_id, timeout=15)
    assert lines(log)[0] == "audit one"
    view = engine.show(run_id)
    for later in ("audit#2", "audit#3"):
        step = step_of(view, later)
        assert step["after"] == ["audit"] and step["needs"] == []
        assert step["input"] == {"args": [log, later.replace("audit#2", "two")
                                          .replace("audit#3", "three")], "kwargs": {}}


def _sleeping_until(when: Any) -> wp.Flow[Any, Any]:
    @wp.flow(name=f"sleep-until-{when}")
    def sleeper(x: int) -> None:
        wp.sleep_until(when)

    return sleeper


def test_waits_are_refused_outside_a_flow_and_with_bad_arguments() -> None:
    with pytest.raises(wp.DefinitionError, match=r"call it in a @wp\.flow body"):
        wp.sleep(1)
    with pytest.raises(wp.DefinitionError, match="on_timeout"):
        @wp.flow(name="bad-gate")
        def bad(x: int) -> None:
            wp.gate("g", on_timeout="maybe")
        _ = bad.graph
    for when, message in [("25:00 UTC", "not a time of day"),
                          ("09:00 Mars/Olympus", "unknown time zone"),
                          (datetime(2030, 1, 1), "aware datetime"), ("soon", "HH:MM")]:
        with pytest.raises(wp.DefinitionError, match=message):
            _ = _sleeping_until(when).graph
    with pytest.raises(wp.DefinitionError, match="two steps named"):
        @wp.flow(name="twice")
        def twice(x: int) -> None:
            wp.gate("same")
            wp.gate("same")
        _ = twice.graph


def test_sleep_until_a_time_of_day_is_the_next_such_moment_in_that_zone() -> None:
    # 2026-03-28 12:00 UTC: Paris is at UTC+1, and moves to UTC+2 overnight.
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC).timestamp()
    due = due_at({"at": "09:00:00", "tz": "Europe/Paris"}, now)
    assert datetime.fromtimestamp(due, UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    early = datetime(2026, 3, 28, 6, 0, tzinfo=UTC).timestamp()
    due = due_at({"at": "09:00:00", "tz": "Europe/Paris"}, early)
    assert datetime.fromtimestamp(due, UTC) == datetime(2026, 3, 28, 8, 0, tzinfo=UTC)
    assert due_at({"until": now - 50}, now) == now  # already past: at once


@wp.task()
def ship_date(at: str) -> dict[str, str]:
    return {"at": at}


@wp.flow()
def data_driven(log: str, pause: Any, at: str) -> float:
    wp.sleep(pause)
    wp.sleep_until(ship_date(at)["at"])
    return stamp(log, "shipped")


def test_sleeps_can_take_their_time_from_the_input_or_a_task(
        engine: wp.Engine, tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    soon = (datetime.now(UTC) + timedelta(seconds=0.8)).isoformat()
    good = engine.start(data_driven, {"log": log, "pause": 0.2, "at": soon})
    bad = engine.start(data_driven, {"log": log, "pause": "a while", "at": soon})
    naive = engine.start(data_driven, {"log": log, "pause": 0, "at": "2030-01-01T09:00"})
    with engine.serving(lease=LEASE):
        assert engine.result(good, timeout=15) >= ts(soon)
        with pytest.raises(wp.RunFailed, match="number of seconds"):
            engine.result(bad, timeout=15)
        with pytest.raises(wp.RunFailed, match="with its offset"):
            engine.result(naive, timeout=15)
    view = engine.show(good)
    assert step_of(view, "sleep#2")["needs"] == ["ship_date"]
    assert lines(log) == ["shipped"]
