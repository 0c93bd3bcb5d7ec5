"""Heartbeats (both stores): details are stored and shown; 2 missed intervals make a step
suspicious; 3 cancel the attempt — the running code learns it through `ctx.heartbeat()`
(`wp.Cancelled`) or, for `async def`, by being cancelled — and it is retried."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import waypost as wp

from .helpers import result_of, step_of

BEAT = 0.3
RETRY = wp.Backoff(initial=0.05, jitter=False)


@wp.task(heartbeat=1.0)
def steady(n: int, ctx: wp.Context) -> int:
    for i in range(n):
        ctx.heartbeat({"done": i + 1, "of": n})
        time.sleep(0.1)
    return n


@wp.flow()
def steady_flow(n: int) -> int:
    return steady(n)


@wp.task(heartbeat=BEAT, retries=1, backoff=RETRY)
def stalls_once(marker: str, ctx: wp.Context) -> str:
    log = Path(marker)
    if ctx.attempt == 1:
        ctx.heartbeat("starting")
        time.sleep(8 * BEAT)  # stuck: no heartbeat for far more than 3 intervals
        try:
            ctx.heartbeat("back")
        except wp.Cancelled:
            log.write_text(f"attempt 1 cancelled={ctx.cancelled}")
            raise
        log.write_text("attempt 1 was not cancelled")
        return "late"
    ctx.heartbeat("second try")
    return "ok"


@wp.flow()
def stall_flow(marker: str) -> str:
    return stalls_once(marker)


@wp.task(heartbeat=BEAT, retries=1, backoff=RETRY)
async def stalls_once_async(marker: str, ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            Path(marker).write_text("coroutine cancelled")
            raise
    return "ok"


@wp.flow()
def stall_async_flow(marker: str) -> str:
    return stalls_once_async(marker)


def _watch(engine: wp.Engine, run_id: str, name: str, timeout: float = 30) -> dict[str, Any]:
    """Follow a step until its run ends; remember whether it was ever seen suspicious."""
    seen: dict[str, Any] = {"suspicious": False, "details": []}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = engine.show(run_id)
        step = step_of(view, name)
        seen["suspicious"] |= step["suspicious"]
        if step["heartbeat_details"] is not None and step["status"] == "running":
            seen["details"].append(step["heartbeat_details"])
        if view["status"] in ("succeeded", "failed"):
            return seen
        time.sleep(0.03)
    raise AssertionError(f"run {run_id} did not finish in {timeout}s")


def test_heartbeat_details_are_stored_and_shown(engine: wp.Engine) -> None:
    run_id = engine.start(steady_flow, {"n": 8})
    with engine.serving():
        seen = _watch(engine, run_id, "steady")
    assert engine.result(run_id) == 8
    assert seen["details"], "the running step never showed its heartbeat details"
    assert all(d["of"] == 8 for d in seen["details"])
    assert not seen["suspicious"], "a task that beats in time is never suspicious"
    step = step_of(engine.show(run_id), "steady")
    assert step["heartbeat"] == 1.0 and step["heartbeat_at"] is not None


def test_missed_heartbeats_make_a_step_suspicious_then_cancel_and_retry_it(
        engine: wp.Engine, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = engine.start(stall_flow, {"marker": str(marker)})
    with engine.serving() as worker:
        seen = _watch(engine, run_id, "stalls_once")
        assert result_of(engine, worker, run_id) == "ok"
        # the stuck body learns of its cancellation at its next heartbeat
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert seen["suspicious"], "2 missed intervals must show the step as suspicious"
    assert marker.read_text() == "attempt 1 cancelled=True"
    step = step_of(engine.show(run_id), "stalls_once")
    assert step["attempts"] == 2
    (first,) = step["history"]
    assert first["outcome"] == "heartbeat"
    assert first["error"]["type"] == "HeartbeatTimeout"
    assert step["output"] == "ok", "the cancelled attempt's late result must not count"


def test_an_async_task_that_stops_beating_is_cancelled(engine: wp.Engine,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = engine.start(stall_async_flow, {"marker": str(marker)})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id, timeout=30) == "ok"
    assert marker.read_text() == "coroutine cancelled"
    step = step_of(engine.show(run_id), "stalls_once_async")
    assert [h["outcome"] for h in step["history"]] == ["heartbeat"]
