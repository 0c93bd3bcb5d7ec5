"""queue_timeout (both stores): a ready step that no worker takes in time fails, and what
needs it is blocked; a step taken in time is unaffected."""

from __future__ import annotations

import pytest

import waypost as wp

from .helpers import step_of


@wp.task(queue_timeout=0.3)
def nobody_serves(x: int) -> int:
    return x


@wp.task()
def downstream(x: int) -> int:
    return x + 1


@wp.task()
def bystander() -> str:
    return "here"


@wp.flow()
def starved(x: int) -> dict:
    return {"value": downstream(nobody_serves(x)), "other": bystander()}


@wp.task(queue_timeout=30)
def served(x: int) -> int:
    return x * 2


@wp.flow()
def fed(x: int) -> int:
    return served(x)


def test_a_step_nobody_takes_in_time_fails(engine: wp.Engine) -> None:
    run_id = engine.start(starved, {"x": 1})
    # a worker that runs everything but `nobody_serves` (its sweeper does the expiring)
    tasks = {t.name: t for t in (downstream, bystander)}
    with engine.serving(tasks=tasks), pytest.raises(wp.RunFailed, match="queue_timeout"):
        engine.result(run_id, timeout=15)
    view = engine.show(run_id)
    starving = step_of(view, "nobody_serves")
    assert (starving["status"], starving["attempts"]) == ("failed", 0)
    assert starving["error"]["type"] == "QueueTimeout"
    assert step_of(view, "downstream")["status"] == "upstream_failed"
    assert step_of(view, "bystander")["status"] == "succeeded"


def test_a_step_taken_in_time_is_unaffected(engine: wp.Engine) -> None:
    assert engine.run(fed, {"x": 4}, timeout=15) == 8
