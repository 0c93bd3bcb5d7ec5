"""Handlers the event-chain benchmark's worker processes serve (benchmarks/chains.py)."""

from __future__ import annotations

from typing import Any

import waypost as wp

FANOUT = 100
HOPS = 100


@wp.on("bench.one")
def one(item: Any) -> None:
    return None


@wp.on("bench.hop")
def hop(item: dict[str, Any]) -> None:
    if item["n"] + 1 < HOPS:
        wp.emit("bench.hop", {"n": item["n"] + 1})


def _fan(i: int) -> wp.Handler:
    def fan(item: Any) -> None:
        return None

    fan.__name__ = fan.__qualname__ = f"fan_{i}"
    return wp.on("bench.fan")(fan)


FANS = [_fan(i) for i in range(FANOUT)]
