"""Prometheus metrics of this process (prometheus_client's default registry): what its
workers' attempts did, fed by telemetry.py, never on the worker's own path."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STARTED = Counter("waypost_attempts_started", "Attempts started by this process's workers",
                  ["task"])
ENDED = Counter("waypost_attempts_ended", "Attempts ended, by outcome (succeeded, failed, "
                "timeout, lost, handed_off)", ["task", "outcome"])
DURATION = Histogram("waypost_attempt_seconds", "How long attempts ran", ["task"],
                     buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                              300, 900, 3600))
DROPPED = Counter("waypost_telemetry_dropped", "Telemetry records dropped: the buffer was full")
