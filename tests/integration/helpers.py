"""Helpers for reading `engine.show()` views."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import waypost as wp


def step_of(view: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in view["steps"] if s["name"] == name]
    assert len(found) == 1, f"expected one step {name!r}, got {[s['name'] for s in view['steps']]}"
    return found[0]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def result_of(engine: wp.Engine, worker: wp.Worker, run_id: str, timeout: float = 30) -> Any:
    """`engine.result()`, but fail at once, and say why, if the in-process worker died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return engine.result(run_id, timeout=0.1)
        except wp.ResultTimeout:
            failure = getattr(worker, "_failure", None)
            if failure is not None:
                raise AssertionError(f"the worker died: {failure!r}") from failure
            if time.monotonic() > deadline:
                raise


def join_listeners(timeout: float = 5.0) -> None:
    """Wait for PostgreSQL listener threads of stopped workers: they outlive `stop()` by up
    to a second and must not touch a test's schema after it was dropped."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name == "waypost-listen":
            thread.join(max(0.0, deadline - time.monotonic()))


def most_in_any_window(times: Sequence[float], width: float = 1.0) -> int:
    """The largest number of `times` in [t, t + width) over every t that is one of them."""
    ordered = sorted(times)
    most, end = 0, 0
    for start, t in enumerate(ordered):
        end = max(end, start)
        while end < len(ordered) and ordered[end] < t + width:
            end += 1
        most = max(most, end - start)
    return most


def most_at_once(intervals: Sequence[tuple[float, float]]) -> int:
    events = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    most = now = 0
    for _, delta in events:
        now += delta
        most = max(most, now)
    return most
