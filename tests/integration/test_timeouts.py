"""Per-task timeouts: an attempt that runs too long fails as a timeout and is retried under
the task's policy; its late result, if any, is never recorded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import waypost as wp

from .helpers import result_of, step_of

CANCELLED: list[str] = []


@wp.task(timeout=0.2, retries=1, backoff=wp.Backoff(initial=0.05, jitter=False))
def too_slow(seconds: float) -> str:
    time.sleep(seconds)
    return "late"


@wp.flow()
def slow_flow(seconds: float) -> str:
    return too_slow(seconds)


@wp.task(timeout=0.2)
async def too_slow_async(marker: str) -> str:
    try:
        await asyncio.sleep(5)
    except asyncio.CancelledError:
        Path(marker).write_text("cancelled")
        raise
    return "late"


@wp.flow()
def slow_async_flow(marker: str) -> str:
    return too_slow_async(marker)


@wp.task(timeout=5)
def quick_enough(x: int) -> int:
    time.sleep(0.01)
    return x + 1


@wp.flow()
def quick_flow(x: int) -> int:
    return quick_enough(x)


def test_an_attempt_past_its_timeout_fails_and_is_retried(engine: wp.Engine) -> None:
    run_id = engine.start(slow_flow, {"seconds": 0.8})
    with engine.serving() as worker, pytest.raises(wp.RunFailed):
        result_of(engine, worker, run_id)
    step = step_of(engine.show(run_id), "too_slow")
    assert step["status"] == "failed"
    assert step["attempts"] == 2
    assert [a["outcome"] for a in step["history"]] == ["timeout", "timeout"]
    assert step["error"]["type"] == "TimeoutError"
    assert "0.2s timeout" in step["error"]["message"]
    assert step["output"] is None, "a late result must never be recorded"


def test_an_async_task_past_its_timeout_is_cancelled(engine: wp.Engine, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = engine.start(slow_async_flow, {"marker": str(marker)})
    with engine.serving() as worker, pytest.raises(wp.RunFailed, match="timeout"):
        result_of(engine, worker, run_id)
    assert marker.read_text() == "cancelled"
    assert step_of(engine.show(run_id), "too_slow_async")["history"][0]["outcome"] == "timeout"


def test_a_task_within_its_timeout_succeeds(engine: wp.Engine) -> None:
    assert engine.run(quick_flow, {"x": 1}, timeout=30) == 2
