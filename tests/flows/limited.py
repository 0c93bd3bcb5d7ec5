"""Flows whose tasks call an 'API' guarded by limits, served by worker processes in the
multi-worker limit tests.

Every call appends one JSON line with its own `time.time()` to the ledger file named by
`WAYPOST_TEST_LEDGER` (O_APPEND, one write per line, so lines of concurrent calls in
several processes never interleave): the tests judge the limits by these timestamps,
never by what the store says.
"""

from __future__ import annotations

import json
import os
import time

import waypost as wp
from tests.flows.crash import LEDGER_ENV

api = wp.limit("test-api", rate="20/s")
slots = wp.limit("test-slots", rate="20/s", concurrency=3)


def witness(ctx: wp.Context, event: str) -> None:
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    line = {"t": time.time(), "event": event, "step": ctx.step, "attempt": ctx.attempt,
            "pid": os.getpid()}
    data = (json.dumps(line) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@wp.task(uses=["test-api"])
def call_api(i: int, ctx: wp.Context) -> int:
    witness(ctx, "call")
    return i


@wp.flow()
def burst(items: list) -> list:
    return call_api.map(items)


@wp.task(uses=[slots])
def call_slow_api(i: int, ctx: wp.Context) -> int:
    witness(ctx, "start")
    time.sleep(0.1)
    witness(ctx, "end")
    return i


@wp.flow()
def slow_burst(items: list) -> list:
    return call_slow_api.map(items)
