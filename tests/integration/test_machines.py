"""State machines on the shared runtime (both stores): transitions by an action's outcome,
guards and defaults, error routing by exception type, final states, loops that keep every
visit, and a machine's history in `show`."""

from __future__ import annotations

from typing import Any

import pytest

import waypost as wp

from .helpers import result_of, step_of

FAST = wp.Backoff(initial=0.01, jitter=False)


class CardDeclined(Exception):
    pass


@wp.task()
def bump(data: dict[str, Any]) -> dict[str, Any]:
    return {"n": data["n"] + 1}


class Counter(wp.Machine):
    initial = "counting"
    counting = wp.State(bump, done=[wp.to("done", when=lambda data, result: data["n"] >= 3),
                                    "counting"])
    done = wp.Final()


def test_a_loop_runs_each_visit_as_its_own_step_and_records_every_transition(
        engine: wp.Engine) -> None:
    run_id = engine.start(Counter, {"n": 0})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == {"n": 3}
    view = engine.show(run_id)
    assert (view["kind"], view["state"], view["data"]) == ("machine", "done", {"n": 3})
    moves = [(t["seq"], t["from"], t["to"], t["trigger"]) for t in view["transitions"]]
    assert moves == [(1, None, "counting", "start"), (2, "counting", "counting", "done"),
                     (3, "counting", "counting", "done"), (4, "counting", "done", "done")]
    assert [(t["data_before"], t["data_after"]) for t in view["transitions"][1:]] == [
        ({"n": 0}, {"n": 1}), ({"n": 1}, {"n": 2}), ({"n": 2}, {"n": 3})]
    visits = [(s["name"], s["status"], s["input"]["args"][0]) for s in view["steps"]]
    assert visits == [("counting#1", "succeeded", {"n": 0}), ("counting#2", "succeeded", {"n": 1}),
                      ("counting#3", "succeeded", {"n": 2})]
    keys = {s["idempotency_key"] for s in view["steps"]}
    assert len(keys) == 3, "every visit has its own idempotency key"


SEEN: list[int] = []


@wp.task(retries=5, backoff=FAST)
def charge(data: dict[str, Any], ctx: wp.Context) -> dict[str, Any]:
    SEEN.append(ctx.attempt)
    if data.get("declined"):
        raise CardDeclined(f"card of {data['customer']} declined")
    return {"charged": True}


@wp.task()
def ask_a_person(data: dict[str, Any]) -> str:
    return f"asked about {data['last_error']['type']}"


class Payment(wp.Machine):
    initial = "charging"
    charging = wp.State(charge, done="paid", errors={CardDeclined: "escalated"}, retries=1)
    escalated = wp.State(ask_a_person, done="declined")
    paid = wp.Final()
    declined = wp.Final(failed=True)


def test_an_error_is_routed_by_type_after_the_states_own_retries(engine: wp.Engine) -> None:
    SEEN.clear()
    run_id = engine.start(Payment, {"customer": "ada", "declined": True})
    with engine.serving() as worker, pytest.raises(wp.RunFailed) as failed:
        result_of(engine, worker, run_id)
    assert "ended in failed state declined" in str(failed.value)
    assert SEEN == [1, 2], "the state's retries=1 replaces the task's retries=5"
    view = engine.show(run_id)
    assert [(t["from"], t["to"], t["trigger"]) for t in view["transitions"]] == [
        (None, "charging", "start"), ("charging", "escalated", "error"),
        ("escalated", "declined", "done")]
    routed = view["transitions"][1]["data_after"]
    assert routed["last_error"]["type"] == "CardDeclined"
    assert routed["last_error"]["state"] == "charging"
    assert view["data"]["escalated"] == "asked about CardDeclined"
    assert step_of(view, "charging#1")["status"] == "failed"
    assert view["dead_letters"] == [], "a routed failure is handled, not a dead letter"


def test_a_machine_succeeds_in_a_final_state_with_its_data_as_output(
        engine: wp.Engine) -> None:
    run_id = engine.start(Payment, {"customer": "bob"}, key="payment-bob")
    assert engine.start(Payment, {"customer": "bob"}, key="payment-bob") == run_id
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == {"customer": "bob", "charged": True}
    assert engine.show(run_id)["state"] == "paid"


@wp.task()
def explode(data: dict[str, Any]) -> None:
    raise ValueError("no route for this")


class Unrouted(wp.Machine):
    initial = "trying"
    trying = wp.State(explode, done="done", errors={CardDeclined: "done"})
    done = wp.Final()


def test_an_unrouted_failure_fails_the_run_and_is_a_dead_letter(engine: wp.Engine) -> None:
    run_id = engine.start(Unrouted, {})
    with engine.serving() as worker, pytest.raises(wp.RunFailed) as failed:
        result_of(engine, worker, run_id)
    assert "no route for this" in str(failed.value)
    view = engine.show(run_id)
    assert view["state"] == "trying"
    assert [(d["step"], d["status"]) for d in view["dead_letters"]] == [("trying#1", "dead")]


@wp.task()
def keep(data: dict[str, Any]) -> int:
    return 7


class BrokenGuard(wp.Machine):
    initial = "checking"
    checking = wp.State(keep, done=[wp.to("done", when=lambda data, result: data["missing"]),
                                    "done"])
    done = wp.Final()


class NoDefault(wp.Machine):
    initial = "checking"
    checking = wp.State(keep, done=[wp.to("done", when=lambda data, result: result > 10)])
    done = wp.Final()


@pytest.mark.parametrize(("machine", "message"), [
    (BrokenGuard, "the guard of the transition to done raised KeyError"),
    (NoDefault, "no transition out of checking applies to the result of checking#1")])
def test_a_guard_that_fails_or_leaves_no_way_out_fails_the_run_not_the_worker(
        engine: wp.Engine, machine: type[wp.Machine], message: str) -> None:
    run_id = engine.start(machine, {})
    with engine.serving() as worker:
        with pytest.raises(wp.RunFailed) as failed:
            result_of(engine, worker, run_id)
        assert message in str(failed.value)
        assert "state checking" in str(failed.value)
        again = engine.start(Counter, {"n": 2})
        assert result_of(engine, worker, again) == {"n": 3}, "the worker carries on"


class Loop(wp.Machine):
    initial = "counting"
    counting = wp.State(bump, done=[wp.to("done", when=lambda data, result: data["n"] >= 1000),
                                    "counting"])
    done = wp.Final()


@pytest.mark.slow
def test_a_loop_of_a_thousand_re_entries(engine: wp.Engine) -> None:
    run_id = engine.start(Loop, {"n": 0})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id, timeout=120) == {"n": 1000}
    view = engine.show(run_id)
    assert len(view["steps"]) == 1000 and len(view["transitions"]) == 1001
    assert {s["status"] for s in view["steps"]} == {"succeeded"}


class DeadEnd(wp.Machine):
    initial = "trying"
    dead_end = "apologising"
    trying = wp.State(explode, done="done", errors={CardDeclined: "done"})
    apologising = wp.State(ask_a_person, done="done")
    done = wp.Final()


def test_a_failure_no_state_routes_goes_to_the_dead_end_handler(engine: wp.Engine) -> None:
    run_id = engine.start(DeadEnd, {})
    with engine.serving() as worker:
        output = result_of(engine, worker, run_id)
    assert output["apologising"] == "asked about ValueError"
    view = engine.show(run_id)
    assert [t["to"] for t in view["transitions"]] == ["trying", "apologising", "done"]
    assert view["dead_letters"] == []


def test_a_dead_end_that_is_not_a_state_is_refused() -> None:
    with pytest.raises(wp.DefinitionError, match="dead_end = 'nowhere'"):
        type("Bad", (wp.Machine,), {"__module__": __name__, "initial": "a",
                                    "dead_end": "nowhere", "a": wp.Final()})
