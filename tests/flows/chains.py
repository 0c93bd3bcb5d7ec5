"""Handlers that worker subprocesses serve in the event-chain process tests; each delivery
appends one line to the ledger (tests/flows/crash.py `record`)."""

from __future__ import annotations

import time
from typing import Any

import waypost as wp

from .crash import record

HOPS = 30


@wp.on("proc.lane")
def in_lane(item: dict[str, Any], ctx: wp.Context) -> None:
    started = time.monotonic()
    time.sleep(0.01)
    record(ctx, started, lane=item["key"], n=item["n"])


@wp.on("proc.hop")
def hop(item: dict[str, Any], ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(0.1)
    record(ctx, started, n=item["n"])
    if item["n"] + 1 < HOPS:
        wp.emit("proc.hop", {"n": item["n"] + 1}, id=f"hop-{item['n'] + 1}")
    return int(item["n"])
