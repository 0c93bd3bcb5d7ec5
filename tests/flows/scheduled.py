"""A flow on a two-second cron schedule (a sixth field is seconds), served by worker
subprocesses in the schedule process test; each run appends its due time to the ledger
(tests/flows/crash.py `record`)."""

from __future__ import annotations

import time

import waypost as wp

from .crash import record


@wp.task
def tick(scheduled_at: str, ctx: wp.Context) -> str:
    record(ctx, time.monotonic(), due=scheduled_at)
    return scheduled_at


@wp.flow(schedule="* * * * * */2", name="tests.flows.scheduled:every_two_seconds")
def every_two_seconds(scheduled_at: str) -> str:
    return tick(scheduled_at)
