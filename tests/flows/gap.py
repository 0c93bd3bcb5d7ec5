"""Two flows every six seconds, one per missed-fire policy, for the worker-free gap test
(tests/acceptance/test_schedule_processes.py)."""

from __future__ import annotations

from datetime import timedelta

import waypost as wp

PERIOD = 6.0


@wp.task
def note(policy: str, scheduled_at: str) -> str:
    return f"{policy} {scheduled_at}"


@wp.flow(every=timedelta(seconds=PERIOD), name="tests.flows.gap:once")
def once(scheduled_at: str) -> str:
    return note("once", scheduled_at)


@wp.flow(every=timedelta(seconds=PERIOD), missed="skip", name="tests.flows.gap:skip")
def skip(scheduled_at: str) -> str:
    return note("skip", scheduled_at)
