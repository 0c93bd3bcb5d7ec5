"""Flows the behaviour tests run, in-process and through the CLI (`tests.flows.behaviour`).

Every task that matters to a test records each execution as a line in a file under the
run's `workdir`, so a test can count executions even when a worker is another process,
and parallel tests never share a counter. `gated` fails until a flag file exists: the
"deploy a fix, then resume" switch.
"""

from __future__ import annotations

import time
from pathlib import Path

import waypost as wp

FIX_FLAG = "fixed"


def mark(workdir: str, name: str) -> int:
    """Record one execution of `name`; return how many there have been, this one included."""
    path = Path(workdir) / f"{name}.log"
    with path.open("a") as f:
        f.write("x\n")
    return len(path.read_text().splitlines())


def executions(workdir: str | Path, name: str) -> int:
    path = Path(workdir) / f"{name}.log"
    return len(path.read_text().splitlines()) if path.exists() else 0


def apply_fix(workdir: str | Path) -> None:
    (Path(workdir) / FIX_FLAG).touch()


# -- plain ------------------------------------------------------------------------------
@wp.task()
def add(a: int, b: int) -> int:
    return a + b


@wp.flow()
def adder(a: int, b: int = 2) -> int:
    return add(a, b)


# -- retries ----------------------------------------------------------------------------
RETRY_BACKOFF = wp.Backoff(initial=0.25, factor=2.0, max=10.0, jitter=False)
JITTER_BACKOFF = wp.Backoff(initial=0.2, factor=2.0, max=10.0, jitter=True)
CAPPED_BACKOFF = wp.Backoff(initial=0.1, factor=20.0, max=0.2, jitter=False)


@wp.task(retries=2, backoff=RETRY_BACKOFF)
def flaky(workdir: str, failures: int) -> str:
    n = mark(workdir, "flaky")
    if n <= failures:
        raise RuntimeError(f"flaky failure number {n}")
    return f"ok on attempt {n}"


@wp.flow()
def flaky_flow(workdir: str, failures: int) -> str:
    return flaky(workdir, failures)


@wp.task(retries=2, backoff=JITTER_BACKOFF)
def jittery(workdir: str, failures: int) -> str:
    n = mark(workdir, "jittery")
    if n <= failures:
        raise RuntimeError(f"jittery failure number {n}")
    return f"ok on attempt {n}"


@wp.flow()
def jittery_flow(workdir: str, failures: int) -> str:
    return jittery(workdir, failures)


@wp.task(retries=3, backoff=CAPPED_BACKOFF)
def capped(workdir: str, failures: int) -> str:
    n = mark(workdir, "capped")
    if n <= failures:
        raise RuntimeError(f"capped failure number {n}")
    return f"ok on attempt {n}"


@wp.flow()
def capped_flow(workdir: str, failures: int) -> str:
    return capped(workdir, failures)


@wp.task(retries=3, backoff=wp.Backoff(initial=0.05, jitter=False))
def declines(workdir: str) -> str:
    mark(workdir, "declines")
    raise wp.Fatal("card declined: do not retry")


@wp.flow()
def fatal_flow(workdir: str) -> str:
    return declines(workdir)


@wp.task(retries=1, backoff=wp.Backoff(initial=0.05, jitter=False))
def always_fails(workdir: str) -> str:
    n = mark(workdir, "always_fails")
    raise ValueError(f"boom {n}")


@wp.task()
def after_failure(value: str) -> str:
    return f"never: {value}"


@wp.task()
def slow_ok(workdir: str, seconds: float) -> str:
    mark(workdir, "slow_ok")
    time.sleep(seconds)
    return "slow done"


@wp.task()
def shout(value: str) -> str:
    return value.upper()


@wp.flow()
def exhausted_flow(workdir: str) -> dict:
    bad = always_fails(workdir)
    return {"bad": after_failure(bad), "good": shout(slow_ok(workdir, 0.4))}


# -- resume -----------------------------------------------------------------------------
@wp.task()
def fetch(workdir: str) -> int:
    mark(workdir, "fetch")
    return 20


@wp.task()
def gated(workdir: str, value: int) -> int:
    mark(workdir, "gated")
    if not (Path(workdir) / FIX_FLAG).exists():
        raise RuntimeError("the fix is not deployed yet")
    return value + 1


@wp.task()
def finish(workdir: str, value: int) -> int:
    mark(workdir, "finish")
    return value * 2


@wp.task()
def side(workdir: str) -> str:
    mark(workdir, "side")
    return "side done"


@wp.flow()
def fixable(workdir: str) -> dict:
    value = gated(workdir, fetch(workdir))
    return {"result": finish(workdir, value), "side": side(workdir)}


# -- fan-out / fan-in ---------------------------------------------------------------------
@wp.task()
def numbers(n: int) -> list:
    return list(range(n))


@wp.task()
def square(x: int) -> int:
    return x * x


@wp.task()
def total(values: list) -> int:
    return sum(values)


@wp.task()
def count(values: list) -> int:
    return len(values)


@wp.flow()
def squares(n: int) -> dict:
    squared = square.map(numbers(n))
    return {"sum": total(squared), "count": count(squared)}


@wp.flow()
def squares_of(xs: list) -> list:
    return square.map(xs)


@wp.task()
def fragile(x: int, workdir: str, bad: int) -> int:
    mark(workdir, f"fragile-{x}")
    if x == bad and not (Path(workdir) / FIX_FLAG).exists():
        raise RuntimeError(f"item {x} is bad")
    return x * 10


@wp.flow()
def fragile_fanout(workdir: str, n: int, bad: int) -> int:
    return total(fragile.map(numbers(n), workdir, bad))


@wp.task(retries=2, backoff=wp.Backoff(initial=0.05, jitter=False))
def wobbly(x: int, workdir: str) -> int:
    if mark(workdir, f"wobbly-{x}") == 1 and x % 2:
        raise RuntimeError(f"odd item {x} fails its first attempt")
    return x + 1


@wp.flow()
def wobbly_fanout(workdir: str, n: int) -> int:
    return total(wobbly.map(numbers(n), workdir))


@wp.task()
def settings() -> dict:
    return {"size": 3}


@wp.flow()
def map_over_dict() -> list:
    return square.map(settings())


@wp.flow()
def pick(n: int) -> int:
    return square(numbers(n)[3])


# -- a state machine ----------------------------------------------------------------------
@wp.task()
def tick(data: dict) -> dict:  # type: ignore[type-arg]
    return {"ticks": data.get("ticks", 0) + 1}


class Ticker(wp.Machine):
    """Ticks until it has ticked twice: a loop with a guard, decided in the worker."""

    initial = "ticking"
    ticking = wp.State(tick, done=[wp.to("done", when=lambda data, result: data["ticks"] >= 2),
                                   "ticking"])
    done = wp.Final()


class Approval(wp.Machine):
    """Waits for a decision; the guard is code, so only a process with this class (a
    worker of this module) can decide it."""

    initial = "waiting"
    waiting = wp.State(on={"decided": [wp.to("approved", when=lambda data, p: p["ok"]),
                                       "rejected"]})
    approved = wp.Final()
    rejected = wp.Final(failed=True)


@wp.task(escalate_after=1)
def declined_charge(data: dict) -> dict:  # type: ignore[type-arg]
    raise ConnectionError("the card network said no")


class Escalated(wp.Machine):
    """An action that needs a person, with a guard on what follows it: `waypost skip` from
    a shell (which has not this class) ends the step, a worker decides the transition."""

    initial = "charging"
    charging = wp.State(declined_charge, done=[
        wp.to("paid", when=lambda data, result: bool(result and result.get("ok"))), "declined"])
    paid = wp.Final()
    declined = wp.Final(failed=True)
