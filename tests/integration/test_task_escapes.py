"""What a task body throws that is not an `Exception` (both stores): it is the attempt's
failure, retried per the task's policy, and the worker carries on serving.

The tasks live at module level because an isolated task's child process imports this
module to find them. Each fails on its first attempt and succeeds on its second."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

import waypost as wp

from .helpers import result_of, step_of

RETRY = wp.Backoff(initial=0.05, jitter=False)


@wp.task(retries=1, backoff=RETRY)
async def cancels_itself(ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        raise asyncio.CancelledError("the body cancelled itself")
    return f"ok on attempt {ctx.attempt}"


@wp.flow()
def self_cancelling() -> str:
    return cancels_itself()


def test_an_async_body_raising_cancelled_error_is_a_failed_attempt_retried(
        engine: wp.Engine) -> None:
    """Defect 3: the held entry was dropped with no outcome, and the lease (renewed by
    owner) kept the step running forever."""
    run_id = engine.start(self_cancelling, {})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id, timeout=30) == "ok on attempt 2"
    step = step_of(engine.show(run_id), "cancels_itself")
    (failed,) = step["history"]
    assert (failed["attempt"], failed["outcome"]) == (1, "failed")
    assert failed["error"]["type"] == "CancelledError"
    assert "cancelled itself" in failed["error"]["message"]


@wp.task(retries=1, backoff=RETRY)
def exits(ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        sys.exit(3)
    return f"ok on attempt {ctx.attempt}"


@wp.task(retries=1, backoff=RETRY)
async def exits_async(ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        sys.exit(3)
    return f"ok on attempt {ctx.attempt}"


@wp.task(retries=1, backoff=RETRY)
def interrupts(ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        raise KeyboardInterrupt("raised by the task")
    return f"ok on attempt {ctx.attempt}"


@wp.task(retries=1, backoff=RETRY, isolation="process")
def exits_isolated(ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        sys.exit(3)
    return f"ok on attempt {ctx.attempt}"


@wp.flow()
def exiting() -> list[str]:
    return [exits(), exits_async(), interrupts()]


@wp.flow()
def exiting_isolated() -> str:
    return exits_isolated()


@pytest.mark.parametrize(("flow", "steps", "error"), [
    (exiting, ["exits", "exits_async", "interrupts"],
     ["SystemExit", "SystemExit", "KeyboardInterrupt"]),
    (exiting_isolated, ["exits_isolated"], ["SystemExit"]),
])
def test_sys_exit_in_a_task_is_the_attempts_failure_not_the_workers_end(
        engine: wp.Engine, flow: wp.Flow, steps: list[str], error: list[str]) -> None:
    """Defect 4: `sys.exit()` (any BaseException but `wp.Cancelled`) ended the worker."""
    run_id = engine.start(flow, {})
    with engine.serving(concurrency=4) as worker:
        result = result_of(engine, worker, run_id, timeout=30)
        assert worker._thread is not None and worker._thread.is_alive()
    assert result == (["ok on attempt 2"] * 3 if len(steps) > 1 else "ok on attempt 2")
    view = engine.show(run_id)
    for name, kind in zip(steps, error, strict=True):
        (failed,) = step_of(view, name)["history"]
        assert (failed["attempt"], failed["outcome"], failed["error"]["type"]) == (
            1, "failed", kind)


@wp.task()
def waits_for(path: str) -> str:
    deadline = time.monotonic() + 20
    while not Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"


@wp.flow()
def waiting(path: str) -> str:
    return waits_for(path)


def test_a_worker_that_dies_on_an_error_gives_back_its_steps_at_once(
        engine: wp.Engine, tmp_path: Path) -> None:
    """Not a kill -9: the loop itself raised. It deleted its row but left its steps running
    until their leases ran out."""
    release = tmp_path / "release"
    run_id = engine.start(waiting, {"path": str(release)})
    worker = engine.worker(lease=120.0)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while step_of(engine.show(run_id), "waits_for")["status"] != "running":
            assert time.monotonic() < deadline, "the step was never claimed"
            time.sleep(0.01)

        def broken(*_: object) -> list[object]:
            raise RuntimeError("the loop broke")

        worker._expire_local = broken  # type: ignore[method-assign]
        worker.wake()
        assert worker._thread is not None
        worker._thread.join(30)
        assert isinstance(worker._failure, RuntimeError)
    finally:
        release.touch()
        worker.stop()
    step = step_of(engine.show(run_id), "waits_for")
    assert (step["status"], step["worker"]) == ("ready", None)
    (lost,) = step["history"]
    assert (lost["attempt"], lost["outcome"]) == (1, "lost")
    assert "the loop broke" in lost["error"]["message"]
    with engine.serving() as again:
        assert result_of(engine, again, run_id, timeout=30) == "done"
