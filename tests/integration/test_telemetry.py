"""Telemetry (both stores): a JSON line per attempt start and end through `logging`, and a
stalled log handler that does not hold up workers (the buffer drops and counts instead)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import waypost as wp
from waypost.runtime.process.telemetry import ATTEMPTS, Telemetry


@wp.task
def telemetry_double(n: int) -> int:
    return 2 * n


@wp.flow(name="tests.telemetry:doubles")
def doubles(items: list) -> Any:  # type: ignore[type-arg]
    return telemetry_double.map(items)


class Captured(logging.Handler):
    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []
        self.gate = gate

    def emit(self, record: logging.LogRecord) -> None:
        if self.gate is not None:
            self.gate.wait(60)
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture
def attempt_log() -> Iterator[Any]:
    handlers: list[logging.Handler] = []

    def attach(handler: logging.Handler) -> None:
        handlers.append(handler)
        ATTEMPTS.addHandler(handler)

    ATTEMPTS.setLevel(logging.INFO)
    yield attach
    for h in handlers:
        if isinstance(h, Captured) and h.gate is not None:
            h.gate.set()
        ATTEMPTS.removeHandler(h)
    ATTEMPTS.setLevel(logging.NOTSET)


def test_every_attempt_start_and_end_is_a_json_line(engine: wp.Engine, attempt_log: Any) -> None:
    captured = Captured()
    attempt_log(captured)
    with engine.serving():
        run_id = engine.start(doubles, {"items": [0, 1, 2]})
        assert engine.result(run_id, timeout=30) == [0, 2, 4]
    deadline = time.monotonic() + 10
    while len([x for x in captured.lines if x["run"] == run_id]) < 6 and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    mine = [x for x in captured.lines if x["run"] == run_id]
    assert sorted(x["event"] for x in mine) == ["attempt_ended"] * 3 + ["attempt_started"] * 3
    steps = {s["name"]: s for s in engine.show(run_id)["steps"]}
    for line in mine:
        step = steps[line["step"]]
        assert line["idempotency_key"] == step["idempotency_key"]
        assert line["input_checksum"] == step["input_checksum"]
        assert line["attempt"] == 1 and line["at"].endswith("Z")
        if line["event"] == "attempt_ended":
            assert line["outcome"] == "succeeded" and line["duration"] >= 0


def test_a_stalled_log_handler_does_not_hold_up_workers(
        engine: wp.Engine, attempt_log: Any) -> None:
    gate = threading.Event()
    stalled = Captured(gate)
    attempt_log(stalled)
    with engine.serving():
        run_id = engine.start(doubles, {"items": list(range(20))})
        # the handler blocks on its first line until the end of the test: were logging on
        # the workers' path, this run would never finish
        assert engine.result(run_id, timeout=60) == [2 * i for i in range(20)]
    assert not gate.is_set() and stalled.lines == []


def test_a_full_buffer_drops_and_counts() -> None:
    gate = threading.Event()
    seen: list[Any] = []
    telemetry = Telemetry(capacity=2)
    telemetry.add_sink(lambda record: (gate.wait(30), seen.append(record)))
    for i in range(10):
        telemetry._put({"event": "x", "n": i})
    time.sleep(0.1)
    assert telemetry.dropped >= 7  # one taken by the stalled sink, two buffered
    gate.set()
    deadline = time.monotonic() + 5
    while len(seen) < 10 - telemetry.dropped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(seen) == 10 - telemetry.dropped
