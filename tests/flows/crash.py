"""Flows and tasks that worker subprocesses serve in the crash and multi-worker tests.

Every task appends one JSON line per execution to the ledger file named by the
`WAYPOST_TEST_LEDGER` environment variable (nothing is written when it is unset, e.g. for a
reference run in the test process). The line is written with O_APPEND in a single write
and fsync'ed before the task returns, so a SIGKILL cannot lose the record of an execution
whose body finished: the ledger is the ground truth of what actually ran.

Outputs are pure functions of the inputs (never a pid or a time), except `hold`, which
returns its pid on purpose so a test can tell which worker's outcome was recorded.
"""

from __future__ import annotations

import json
import os
import random
import time

import waypost as wp

LEDGER_ENV = "WAYPOST_TEST_LEDGER"

# The tasks declare no retries on purpose: an attempt lost with its worker (kill -9,
# SIGSTOP past the lease) is not the task's failure and must not need any.


def record(ctx: wp.Context, started: float, **extra: object) -> None:
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    line = {
        "run": ctx.run_id, "step": ctx.step, "attempt": ctx.attempt,
        "key": ctx.idempotency_key, "pid": os.getpid(),
        "start": started, "end": time.monotonic(), **extra,
    }
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        assert written == len(data), "short write to the ledger"
        os.fsync(fd)
    finally:
        os.close(fd)


def mix(*values: int) -> int:
    """A deterministic scramble so every step's output depends on all of its inputs."""
    h = 0x811C9DC5
    for v in values:
        h = ((h ^ (v & 0xFFFFFFFF)) * 0x01000193) & 0xFFFFFFFF
        h = ((h ^ (v >> 32)) * 0x01000193) & 0xFFFFFFFF
    return h


# -- the 50-step crash flow -----------------------------------------------------------------


@wp.task()
def link(x: int, salt: int, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(random.uniform(0.02, 0.04))
    out = mix(x, salt)
    record(ctx, started)
    return out


@wp.task()
def join(a: int, b: int, c: int, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(random.uniform(0.02, 0.04))
    out = mix(a, b, c)
    record(ctx, started)
    return out


CRASH_STEPS = 50


@wp.flow()
def crash_chain(seed: int) -> dict[str, object]:
    """50 steps: a chain interrupted by diamonds (three parallel branches and a join).

    1 head + 7 x (2 links + 3 branches + 1 join) + 7 tail links = 50 steps."""
    x = link(seed, 0)
    checkpoints = []
    salt = 1
    for _ in range(7):
        x = link(x, salt)
        x = link(x, salt + 1)
        branches = [link(x, salt + 2 + b) for b in range(3)]
        x = join(*branches)
        checkpoints.append(x)
        salt += 10
    for i in range(7):
        x = link(x, 1000 + i)
    return {"final": x, "checkpoints": checkpoints}


# -- the small flow for many runs and several workers ------------------------------------------


@wp.task()
def first(n: int, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(0.002)
    record(ctx, started)
    return n * 3 + 1


@wp.task()
def second(x: int, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(0.002)
    record(ctx, started)
    return x * 7 - 2


@wp.task()
def third(x: int, n: int, ctx: wp.Context) -> dict[str, int]:
    started = time.monotonic()
    time.sleep(0.002)
    record(ctx, started)
    return {"n": n, "value": x + n}


@wp.flow()
def small(n: int) -> dict[str, int]:
    return third(second(first(n)), n)


def small_expected(n: int) -> dict[str, int]:
    return {"n": n, "value": (n * 3 + 1) * 7 - 2 + n}


# -- one step that takes its time, for SIGSTOP past the lease -----------------------------------


@wp.task()
def hold(seconds: float, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(seconds)
    record(ctx, started)
    return os.getpid()


@wp.flow()
def held(seconds: float) -> int:
    return hold(seconds)


# -- a poison pill and an innocent neighbour, for quarantine -----------------------------------


@wp.task()
def poison(ctx: wp.Context) -> None:
    """Kills the worker process that runs it, every time (as a segfault would)."""
    time.sleep(0.2)
    os._exit(1)


@wp.task()
def innocent(n: int, ctx: wp.Context) -> int:
    started = time.monotonic()
    time.sleep(1.5)
    record(ctx, started)
    return n * 2


@wp.flow()
def poisoned() -> None:
    return poison()


@wp.flow()
def bystander(n: int) -> int:
    return innocent(n)


# -- a state machine, for kills between an action and its transition and during a timer ------


@wp.task()
def machine_work(data: dict, ctx: wp.Context) -> dict:  # type: ignore[type-arg]
    started = time.monotonic()
    time.sleep(data["pause"])
    record(ctx, started)
    return {"n": data["n"] + 1}


class Crashable(wp.Machine):
    """Works three visits in a loop, rests on a durable timer, works once more."""

    initial = "working"
    working = wp.State(machine_work, done=[wp.to("resting", when=lambda d, r: d["n"] >= 3),
                                           "working"])
    resting = wp.State(after=1.5, then="finishing")
    finishing = wp.State(machine_work, done="done")
    done = wp.Final()
