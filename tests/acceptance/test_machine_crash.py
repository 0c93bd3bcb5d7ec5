"""A state machine survives kill -9 (both stores): a worker killed while an action runs or
just after it returned, and one killed while the machine waits on its timer. The action's
outcome and the transition it causes commit together, so every transition happens once
and the timer fires once, whoever is alive when it is due."""

from __future__ import annotations

import time

import pytest

import waypost as wp
from tests.flows.crash import Crashable

from ._support import Workers, read_ledger, wait_for

pytestmark = pytest.mark.slow

OPTIONS = ("--lease", "1", "--poll", "0.05", "--grace", "1")


def test_a_machine_killed_in_its_action_and_in_its_timer_moves_once_per_transition(
        db_url: str, workers: Workers) -> None:
    with wp.Engine(db_url, poll=0.05) as engine:
        run_id = engine.start(Crashable, {"n": 0, "pause": 0.4})

        def state() -> str | None:
            return engine.show(run_id)["state"]

        def running(name: str) -> bool:
            steps = {s["name"]: s for s in engine.show(run_id)["steps"]}
            return steps.get(name, {}).get("status") == "running"

        first = workers.start(*OPTIONS)
        wait_for(lambda: running("working#2"), 30, "the second visit to run")
        time.sleep(0.2)  # inside the body
        workers.kill(first)
        second = workers.start(*OPTIONS)
        wait_for(lambda: state() == "resting", 30, "the loop to end in resting")
        workers.kill(second)  # the timer is due in 1.5 s, and nobody is alive
        time.sleep(2.0)
        assert state() == "resting", "a due timer fires only when a worker sweeps"
        workers.start(*OPTIONS)
        assert engine.result(run_id, timeout=60) == {"n": 4, "pause": 0.4}
        view = engine.show(run_id)
    assert [(t["to"], t["trigger"]) for t in view["transitions"]] == [
        ("working", "start"), ("working", "done"), ("working", "done"), ("resting", "done"),
        ("finishing", "timer"), ("done", "done")]
    assert [(s["name"], s["status"]) for s in view["steps"]] == [
        ("working#1", "succeeded"), ("working#2", "succeeded"), ("working#3", "succeeded"),
        ("resting#4", "succeeded"), ("finishing#5", "succeeded")]
    visits = [s["name"] for s in view["steps"]]
    ran = {line["step"] for line in read_ledger(workers.ledger)}
    assert ran == set(visits) - {"resting#4"}, "every action ran, the timer ran no task"
    lost = [h for s in view["steps"] for h in s["history"] if h["outcome"] == "lost"]
    assert lost, "the killed worker's attempt is in the history as lost"
