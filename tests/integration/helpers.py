"""Helpers for reading `engine.show()` views."""

from __future__ import annotations

import threading
import time
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
