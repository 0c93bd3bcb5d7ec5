"""A flow whose claims all lock one shared row: the concurrency limit every claim of
`limited_call` counts under. A worker paused inside its claim transaction holds that lock,
which is what the paused-worker tests need. Executions go to the ledger (see crash.py)."""

from __future__ import annotations

import time

import waypost as wp
from tests.flows.crash import record

shared = wp.limit("test-stall", concurrency=8)


@wp.task(uses=[shared])
def limited_call(i: int, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(0.05)
    record(ctx, started)
    return i * 2


@wp.flow()
def fan(items: list) -> list:
    return limited_call.map(items)
