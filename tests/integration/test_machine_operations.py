"""What operators do to flows works on machines too (both stores): cancel and resume,
a deadline, escalation answered by skip, a dead letter replayed, compensation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import waypost as wp

from .helpers import result_of, step_of

FAST = wp.Backoff(initial=0.01, jitter=False)


@wp.task()
def note(data: dict[str, Any]) -> dict[str, Any]:
    return {"noted": True}


class Waiting(wp.Machine):
    initial = "noting"
    noting = wp.State(note, done="waiting")
    waiting = wp.State(on={"go": "done"})
    done = wp.Final()


def _until(engine: wp.Engine, run_id: str, state: str) -> None:
    deadline = time.monotonic() + 20
    while engine.show(run_id)["state"] != state:
        assert time.monotonic() < deadline, f"never reached {state}"
        time.sleep(0.05)


def test_a_cancelled_machine_resumes_in_the_state_it_was_waiting_in(engine: wp.Engine) -> None:
    run_id = engine.start(Waiting, {})
    with engine.serving() as worker:
        _until(engine, run_id, "waiting")
        engine.cancel(run_id)
        assert engine.status(run_id) == "cancelled"
        with pytest.raises(wp.InputError, match="has ended"):
            engine.send(run_id, "go")
        engine.resume(run_id)
        assert step_of(engine.show(run_id), "waiting#2")["status"] == "waiting"
        assert engine.send(run_id, "go")["status"] == "consumed"
        assert result_of(engine, worker, run_id) == {"noted": True}
    assert [s["status"] for s in engine.show(run_id)["steps"]] == ["succeeded", "succeeded"]


def test_a_deadline_ends_a_waiting_machine(engine: wp.Engine) -> None:
    run_id = engine.start(Waiting, {}, deadline=0.5)
    with engine.serving(), pytest.raises(wp.RunFailed, match="deadline passed"):
        engine.result(run_id, timeout=20)


ATTEMPTS: dict[str, int] = {}


@wp.task(escalate_after=1, backoff=FAST)
def needs_a_person(data: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("the supplier's API is down")


class Escalating(wp.Machine):
    initial = "ordering"
    ordering = wp.State(needs_a_person, done=[wp.to("done", when=lambda d, r: r["ok"]),
                                              "ordering"])
    done = wp.Final()


def test_an_escalated_action_skipped_by_an_operator_moves_on_with_the_given_output(
        engine: wp.Engine) -> None:
    run_id = engine.start(Escalating, {})
    with engine.serving() as worker:
        deadline = time.monotonic() + 20
        while step_of(engine.show(run_id), "ordering#1")["status"] != "needs_attention":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        engine.skip_step(run_id, "ordering#1", {"ok": True}, by="ada")
        assert result_of(engine, worker, run_id) == {"ok": True}
    assert [t["trigger"] for t in engine.show(run_id)["transitions"]] == ["start", "done"]


@wp.task(backoff=FAST)
def flaky_once(data: dict[str, Any]) -> dict[str, Any]:
    if not Path(data["fixed"]).exists():
        raise RuntimeError("not fixed yet")
    return {"fixed": True}


class Replayable(wp.Machine):
    initial = "noting"
    noting = wp.State(note, done="trying")
    trying = wp.State(flaky_once, done="done")
    done = wp.Final()


def test_a_dead_letter_of_a_machine_replays_into_the_next_state(engine: wp.Engine,
                                                                 tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    run_id = engine.start(Replayable, {"fixed": str(fixed)})
    with engine.serving() as worker:
        with pytest.raises(wp.RunFailed, match="not fixed yet"):
            result_of(engine, worker, run_id)
        [letter] = engine.dead_letters(run_id=run_id)
        assert letter["step"] == "trying#2"
        fixed.write_text("")
        engine.replay(letter["id"])
        assert result_of(engine, worker, run_id)["fixed"] is True
    view = engine.show(run_id)
    assert [t["to"] for t in view["transitions"]] == ["noting", "trying", "done"]
    assert step_of(view, "noting#1")["attempts"] == 1, "what succeeded is not run again"


UNDONE: list[dict[str, Any]] = []


@wp.task()
def release_hold(output: Any, data: dict[str, Any]) -> None:
    UNDONE.append(data)


@wp.task(compensate=release_hold)
def hold_stock(data: dict[str, Any]) -> dict[str, Any]:
    return {"held": 3}


@wp.task()
def no_truck(data: dict[str, Any]) -> None:
    raise wp.Fatal("no truck today")


class Saga(wp.Machine):
    initial = "holding"
    holding = wp.State(hold_stock, done="shipping")
    shipping = wp.State(no_truck, done="done")
    done = wp.Final()


def test_a_failed_machine_compensates_what_its_actions_did(engine: wp.Engine) -> None:
    UNDONE.clear()
    run_id = engine.start(Saga, {"order": 5})
    with engine.serving():
        deadline = time.monotonic() + 20
        while engine.status(run_id) not in ("compensated", "compensation_failed"):
            assert time.monotonic() < deadline, engine.status(run_id)
            time.sleep(0.05)
    assert engine.status(run_id) == "compensated"
    assert UNDONE == [{"order": 5}]


class Review(wp.Machine):
    initial = "review"
    review = wp.State(on={"approved": "done", "rejected": "refused"})
    done = wp.Final()
    refused = wp.Final(failed=True)


def test_approve_and_reject_answer_a_machines_waiting_state(engine: wp.Engine) -> None:
    yes, no = engine.start(Review, {}), engine.start(Review, {})
    with pytest.raises(wp.InputError, match="in state review, not shipping"):
        engine.approve(yes, "shipping", by="ada")
    engine.approve(yes, "review", by="ada")
    assert engine.result(yes, timeout=5) == {"by": "ada", "reason": None}
    engine.reject(no, "review", "not today", by="bob")
    with pytest.raises(wp.RunFailed, match="failed state refused"):
        engine.result(no, timeout=5)
    [decision] = step_of(engine.show(yes), "review#1")["history"]
    assert (decision["outcome"], decision["worker"]) == ("approved", "ada")
    with pytest.raises(wp.InputError, match="has ended"):
        engine.approve(yes, "review")
