"""What `waypost show` tells a user about work that is waiting (both stores)."""

from __future__ import annotations

import waypost as wp

from .helpers import step_of


@wp.task()
def lonely(x: int) -> int:
    return x


@wp.flow()
def lonely_flow(x: int) -> int:
    return lonely(x)


@wp.task()
def other(x: int) -> int:
    return x


def test_a_step_no_worker_can_run_says_so(engine: wp.Engine) -> None:
    run_id = engine.start(lonely_flow, {"x": 1})
    step = step_of(engine.show(run_id), "lonely")
    assert step["status"] == "ready"
    assert step["waiting"] == f"no live worker serves task {lonely.name}"

    # a worker that serves other tasks only changes nothing ...
    with engine.serving(tasks={other.name: other}):
        assert step_of(engine.show(run_id), "lonely")["waiting"] is not None
    # ... one that serves it runs it
    with engine.serving():
        assert engine.result(run_id, timeout=30) == 1
    assert step_of(engine.show(run_id), "lonely")["waiting"] is None
