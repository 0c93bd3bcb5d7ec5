"""Telemetry that never blocks orchestration: attempt starts and ends go into a bounded
buffer, and one thread of their own hands them to the sinks (a structured JSON log line
through `logging`, Prometheus counters and histograms). A full buffer drops what does not
fit and counts it (`dropped`, `waypost_telemetry_dropped_total`); a stalled log handler
stalls only that thread. Nothing is formatted on the worker's path while no sink wants it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ... import codec
from ...store.records import ClaimedStep
from ..core.outcome import Outcome

#: The logger of the attempt log: one JSON line per attempt start and end, at INFO.
ATTEMPTS = logging.getLogger("waypost.attempts")

Sink = Callable[[dict[str, Any]], None]


class Telemetry:
    """The buffer and its sinks (the attempt log always among them)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(capacity)
        self._sinks: list[Sink] = [log_sink]
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: Records the buffer had no room for.
        self.dropped = 0

    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            if sink not in self._sinks:
                self._sinks.append(sink)

    @property
    def wanted(self) -> bool:
        """Whether any sink takes records (the log only while its logger is on)."""
        return len(self._sinks) > 1 or ATTEMPTS.isEnabledFor(logging.INFO)

    def started(self, step: ClaimedStep) -> None:
        if self.wanted:
            self._put({"event": "attempt_started", "at": time.time(), "run": step.run_id,
                       "step": step.name, "task": step.task, "attempt": step.attempts,
                       "input_checksum": codec.checksum(step.input),
                       "idempotency_key": step.idempotency_key})

    def ended(self, step: ClaimedStep, outcome: Outcome, seconds: float) -> None:
        if self.wanted:
            kind = "succeeded" if outcome.ok else (
                "handed_off" if outcome.handoff else outcome.kind)
            self._put({"event": "attempt_ended", "at": time.time(), "run": step.run_id,
                       "step": step.name, "task": step.task, "attempt": step.attempts,
                       "input_checksum": codec.checksum(step.input),
                       "idempotency_key": step.idempotency_key, "duration": seconds,
                       "outcome": kind, "error": (outcome.error or {}).get("type")})

    def _put(self, record: dict[str, Any]) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._drain, daemon=True,
                                                    name="waypost-telemetry")
                    self._thread.start()
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            _count_dropped()

    def _drain(self) -> None:
        while True:
            record = self._queue.get()
            for sink in list(self._sinks):
                try:
                    sink(record)
                except Exception:  # a sink's failure is its own, never the worker's
                    logging.getLogger("waypost.telemetry").exception("a telemetry sink failed")


def log_sink(record: dict[str, Any]) -> None:
    """The attempt log: `{"event", "at" (ISO 8601), "run", "step", "task", "attempt",
    "input_checksum", "idempotency_key", ["duration", "outcome", "error"]}`."""
    if ATTEMPTS.isEnabledFor(logging.INFO):
        line = {**record, "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(
            record["at"])) + f".{int(record['at'] * 1000) % 1000:03d}Z"}
        ATTEMPTS.info(json.dumps(line, sort_keys=True))


def metrics_sink(record: dict[str, Any]) -> None:
    """Prometheus: attempts started and ended by task (and outcome), their durations."""
    from . import metrics

    if record["event"] == "attempt_started":
        metrics.STARTED.labels(record["task"]).inc()
    else:
        metrics.ENDED.labels(record["task"], record["outcome"]).inc()
        metrics.DURATION.labels(record["task"]).observe(record["duration"])


def otel_sink(record: dict[str, Any]) -> None:
    """OpenTelemetry (the `waypost[otel]` extra): a span per attempt, named after its task,
    from its start to its end, with the run, step, attempt, key, checksum and outcome as
    attributes, on the global tracer provider the application set up."""
    if record["event"] != "attempt_ended":
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    end = int(record["at"] * 1e9)
    span = trace.get_tracer("waypost").start_span(
        record["task"], start_time=end - int(record["duration"] * 1e9), attributes={
            "waypost.run": record["run"], "waypost.step": record["step"],
            "waypost.attempt": record["attempt"],
            "waypost.idempotency_key": record["idempotency_key"],
            "waypost.input_checksum": record["input_checksum"],
            "waypost.outcome": record["outcome"]})
    if record["outcome"] != "succeeded" and record["outcome"] != "handed_off":
        span.set_status(Status(StatusCode.ERROR, record.get("error") or record["outcome"]))
    span.end(end_time=end)


def _count_dropped() -> None:
    from . import metrics

    metrics.DROPPED.inc()


#: The process's telemetry: workers report to it.
TELEMETRY = Telemetry()

