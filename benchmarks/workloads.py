"""The benchmark flows. Every task is a no-op that returns its input + 1 (or a sum).

Tasks and flows carry explicit names, so a worker process that imports this file as
`benchmarks.workloads` (or as a path) claims exactly the steps that `run.py` starts.

Shapes:
- `chain_1000` / `chain_200`: one run, a linear chain of N no-op steps (one static graph
  each: a flow body runs once, so the length is a constant of the body's loop);
- `three`: a run of 3 no-op steps in a row (the "many small runs" workload);
- `fanout`: `make_list(n)` produces `[0, 1, ..., n-1]`, `noop.map` runs one step per
  element, `total` sums the outputs (n is a run parameter: 1,000, or 200 for peer shapes).
"""

from __future__ import annotations

import waypost as wp

CHAIN_LONG = 1000
CHAIN_PEER = 200  # DBOS peer benchmark w1
THREE_STEPS = 3


@wp.task(name="bench:noop")
def noop(x: int) -> int:
    return x + 1


@wp.task(name="bench:make_list")
def make_list(n: int) -> list[int]:
    return list(range(n))


@wp.task(name="bench:total")
def total(xs: list[int]) -> int:
    return sum(xs)


@wp.flow(name="bench:chain_1000")
def chain_1000(x: int = 0) -> int:
    for _ in range(CHAIN_LONG):
        x = noop(x)
    return x


@wp.flow(name="bench:chain_200")
def chain_200(x: int = 0) -> int:
    for _ in range(CHAIN_PEER):
        x = noop(x)
    return x


@wp.flow(name="bench:three")
def three(x: int = 0) -> int:
    for _ in range(THREE_STEPS):
        x = noop(x)
    return x


@wp.flow(name="bench:fanout")
def fanout(n: int = 1000) -> int:
    return total(noop.map(make_list(n)))


CHAINS = {CHAIN_LONG: chain_1000, CHAIN_PEER: chain_200}


# -- state machines (benchmarks/machines.py) -----------------------------------------------
MACHINE_LOOP = 1000
SENDS = 1000


@wp.task(name="bench:count")
def count(data: dict) -> dict:  # type: ignore[type-arg]
    return {"i": data["i"] + 1}


class Loop1000(wp.Machine):
    """1,000 transitions, each after a no-op action: the machine's twin of chain_1000."""

    name = "bench:loop_1000"
    initial = "looping"
    looping = wp.State(count, done=[wp.to("done", when=lambda d, r: d["i"] >= MACHINE_LOOP),
                                    "looping"])
    done = wp.Final()


class Inbox(wp.Machine):
    """A machine driven by events: every `send` is one transition of a waiting state."""

    name = "bench:inbox"
    initial = "open"
    open = wp.State(on={"msg": [wp.to("done", when=lambda d, p: p["i"] >= SENDS - 1),
                                "open"]})
    done = wp.Final()
