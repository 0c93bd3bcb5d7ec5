"""Rate and concurrency limits (`wp.limit`, `@wp.task(uses=...)`), in process, both stores.

Tasks write their own timestamps to a file named in their input, so the limits are judged
by when the calls really happened. (Multi-process enforcement and kill -9 are in
tests/acceptance/test_limits_workers.py.)
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import waypost as wp

from .helpers import most_at_once, most_in_any_window, result_of, step_of


def note(log: str, event: str, i: int) -> None:
    data = (json.dumps({"t": time.time(), "event": event, "i": i}) + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def notes(log: str, event: str) -> list[dict[str, Any]]:
    lines = Path(log).read_text().splitlines() if Path(log).exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == event]


rated_api = wp.limit("it-rate", rate="5/s")


@wp.task(uses=["it-rate"])
def rated(i: int, log: str) -> int:
    note(log, "call", i)
    return i


@wp.flow()
def rated_burst(items: list, log: str) -> list:
    return rated.map(items, log)


two_slots = wp.limit("it-slots", concurrency=2)


@wp.task(uses=[two_slots])
def slotted(i: int, log: str) -> int:
    note(log, "start", i)
    time.sleep(0.05)
    note(log, "end", i)
    return i


@wp.flow()
def slotted_burst(items: list, log: str) -> list:
    return slotted.map(items, log)


wp.limit("it-retries", rate="3/s")


@wp.task(uses=["it-retries"], retries=2,
         backoff=wp.Backoff(initial=0.01, factor=1.0, jitter=False))
def always_down(i: int, log: str) -> int:
    note(log, "call", i)
    raise RuntimeError("the API is down")


@wp.flow()
def cascade(items: list, log: str) -> list:
    return always_down.map(items, log)


wp.limit("it-one", concurrency=1)
RELEASE = threading.Event()


@wp.task(uses=["it-one"])
def one_at_a_time(i: int) -> int:
    RELEASE.wait(20)
    return i


@wp.flow()
def queue_of_two() -> list:
    return [one_at_a_time(1), one_at_a_time(2)]


wp.limit("it-hourly", rate="1/hour")


@wp.task(uses=["it-hourly"])
def hourly(i: int) -> int:
    return i


@wp.flow()
def two_hourly() -> list:
    return [hourly(1), hourly(2)]


wp.limit("it-handoff", concurrency=1)
TOKENS: list[str] = []


@wp.task(uses=["it-handoff"], completes_externally=True)
def hand_over(i: int, ctx: wp.Context) -> None:
    assert ctx.completion_token is not None
    TOKENS.append(ctx.completion_token)


@wp.flow()
def two_handoffs() -> list:
    return [hand_over(1), hand_over(2)]


@wp.task()
def unlimited(i: int) -> int:
    return i


@wp.flow()
def plain(i: int) -> int:
    return unlimited(i)


@pytest.fixture
def log(workdir: str) -> str:
    return str(Path(workdir) / "calls.jsonl")


# -- enforcement -------------------------------------------------------------------------------
#: The limiter grants by the database's clock; a task notes its call a claim's latency later,
#: which varies by a few milliseconds from one claim to the next (CI saw grants a second
#: apart noted 0.998 s apart). Counting calls in a window a little shorter than the limit's
#: second still catches a limit not kept: unlimited, these calls come milliseconds apart.
CALL_WINDOW = 0.9


def test_concurrency_is_never_exceeded_across_workers(engine: wp.Engine, log: str) -> None:
    run_id = engine.start(slotted_burst, {"items": list(range(12)), "log": log})
    with engine.serving(concurrency=4) as first, engine.serving(concurrency=4):
        assert result_of(engine, first, run_id) == list(range(12))
    starts = {e["i"]: e["t"] for e in notes(log, "start")}
    ends = {e["i"]: e["t"] for e in notes(log, "end")}
    assert sorted(starts) == sorted(ends) == list(range(12))
    # 8 worker slots, 12 steps ready at once: only the limit keeps it to 2.
    assert most_at_once([(starts[i], ends[i]) for i in starts]) == 2


def test_rate_is_never_exceeded_in_any_second(engine: wp.Engine, log: str) -> None:
    run_id = engine.start(rated_burst, {"items": list(range(15)), "log": log})
    with engine.serving(concurrency=8) as worker:
        assert result_of(engine, worker, run_id) == list(range(15))
    times = [e["t"] for e in notes(log, "call")]
    assert len(times) == 15
    assert most_in_any_window(times, CALL_WINDOW) <= 5


def test_retries_are_claimed_through_the_limit(engine: wp.Engine, log: str) -> None:
    """A failure cascade cannot multiply calls past the rate: every retry is a claim."""
    run_id = engine.start(cascade, {"items": [0, 1, 2], "log": log})
    with engine.serving(concurrency=8) as worker, pytest.raises(wp.RunFailed):
        result_of(engine, worker, run_id)
    times = [e["t"] for e in notes(log, "call")]
    assert len(times) == 9  # 3 steps x 3 attempts, each retried at once by its backoff
    assert most_in_any_window(times, CALL_WINDOW) <= 3
    assert [s["attempts"] for s in engine.show(run_id)["steps"] if s["kind"] == "item"] == [3] * 3


def test_a_worker_without_limited_tasks_stores_no_limit(engine: wp.Engine) -> None:
    run_id = engine.start(plain, {"i": 4})
    with engine.serving(tasks={unlimited.name: unlimited}) as worker:
        assert result_of(engine, worker, run_id) == 4
    assert engine.limits() == []


def test_a_step_handed_to_another_system_gives_its_slot_back(engine: wp.Engine) -> None:
    """Documented choice: the slot is held until the hand-off, not until the other system
    completes the step (it is still `running`, but nothing here calls anything for it)."""
    TOKENS.clear()
    run_id = engine.start(two_handoffs)
    with engine.serving(concurrency=4) as worker:
        def handed_over() -> list[tuple[str, bool]]:
            # A completion token exists from the claim; the hand-off is recorded when the
            # worker gives up the lease (no worker holds the step any more).
            return [(s["status"], bool(s["completion_token"]) and s["worker"] is None)
                    for s in engine.show(run_id)["steps"]]

        deadline = time.monotonic() + 15
        # The second starts although the first is still running.
        while handed_over() != [("running", True)] * 2:
            assert time.monotonic() < deadline, engine.show(run_id)
            time.sleep(0.02)
        assert {r["name"]: r for r in engine.limits()}["it-handoff"]["in_use"] == 0
        for token in list(TOKENS):
            engine.complete(token, "done")
        assert result_of(engine, worker, run_id) == ["done", "done"]


# -- visibility --------------------------------------------------------------------------------


def test_a_step_waiting_for_a_concurrency_slot_says_so(engine: wp.Engine) -> None:
    RELEASE.clear()
    run_id = engine.start(queue_of_two)
    with engine.serving(concurrency=4) as worker:
        def one_running() -> dict[str, Any] | None:
            view = engine.show(run_id)
            statuses = sorted(s["status"] for s in view["steps"])
            return view if statuses == ["ready", "running"] else None

        deadline = time.monotonic() + 15
        while (view := one_running()) is None:
            assert time.monotonic() < deadline, engine.show(run_id)
            time.sleep(0.02)
        time.sleep(0.3)  # several polls later, the second is still not claimed
        view = engine.show(run_id)
        waiting = [s for s in view["steps"] if s["status"] == "ready"]
        assert len(waiting) == 1
        assert waiting[0]["waiting"] == "for limit it-one (concurrency 1)"
        assert waiting[0]["uses"] == ["it-one"]
        listed = {r["name"]: r for r in engine.limits()}["it-one"]
        assert (listed["in_use"], listed["full"], listed["rate"]) == (1, ["concurrency 1"], None)
        RELEASE.set()
        assert result_of(engine, worker, run_id) == [1, 2]
    assert {r["name"]: r for r in engine.limits()}["it-one"]["in_use"] == 0


def test_a_step_waiting_for_the_rate_window_says_so(engine: wp.Engine) -> None:
    run_id = engine.start(two_hourly)
    with engine.serving(concurrency=4):
        deadline = time.monotonic() + 15
        while sorted(s["status"] for s in engine.show(run_id)["steps"]) != ["ready", "succeeded"]:
            assert time.monotonic() < deadline, engine.show(run_id)
            time.sleep(0.02)
        time.sleep(0.3)
        view = engine.show(run_id)
    waiting = [s for s in view["steps"] if s["status"] == "ready"]
    assert waiting[0]["waiting"] == "for limit it-hourly (rate 1/hour)"
    listed = {r["name"]: r for r in engine.limits()}["it-hourly"]
    assert (listed["granted"], listed["period"], listed["full"]) == (1, 3600.0, ["rate 1/hour"])
    engine.cancel(run_id)


def test_steps_without_limits_show_none(engine: wp.Engine) -> None:
    run_id = engine.start(plain, {"i": 1})
    assert step_of(engine.show(run_id), "unlimited")["uses"] == []


# -- definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "count", "period"), [
    ("20/s", 20, 1.0), ("20/second", 20, 1.0), ("200/minute", 200, 60.0),
    ("1000/hour", 1000, 3600.0), ("5/day", 5, 86400.0), (" 3 / Min ", 3, 60.0),
])
def test_rate_strings(rate: str, count: int, period: float) -> None:
    limit = wp.Limit("parsed", rate=rate)
    assert (limit.rate_count, limit.rate_period) == (count, period)


@pytest.mark.parametrize("rate", ["20", "20/", "/s", "0/s", "-1/s", "1.5/s", "20/fortnight",
                                  "twenty/s", "", 20])
def test_bad_rate_strings_are_refused(rate: Any) -> None:
    with pytest.raises(wp.DefinitionError, match="is not a rate: write COUNT/UNIT"):
        wp.limit("bad-rate", rate=rate)


@pytest.mark.parametrize("concurrency", [0, -1, 1.5, True, "3"])
def test_bad_concurrency_is_refused(concurrency: Any) -> None:
    with pytest.raises(wp.DefinitionError, match="concurrency must be a whole number >= 1"):
        wp.limit("bad-concurrency", concurrency=concurrency)


@pytest.mark.parametrize("name", ["", "has space", 5, None])
def test_bad_names_are_refused(name: Any) -> None:
    with pytest.raises(wp.DefinitionError, match="name must be a non-empty string"):
        wp.limit(name, concurrency=1)


def test_a_limit_needs_a_rate_or_a_concurrency() -> None:
    with pytest.raises(wp.DefinitionError, match="needs a rate, a concurrency, or both"):
        wp.limit("empty")


def test_redeclaring_a_limit() -> None:
    first = wp.limit("it-twice", rate="2/s", concurrency=3)
    assert wp.limit("it-twice", rate="2/second", concurrency=3) is first
    with pytest.raises(wp.DefinitionError, match="already declared"):
        wp.limit("it-twice", rate="3/s", concurrency=3)


def test_a_task_using_an_undeclared_limit_is_refused() -> None:
    with pytest.raises(wp.DefinitionError, match="uses limit 'nowhere', which is not declared"):
        @wp.task(uses=["it-rate", "nowhere"])
        def stray() -> None: ...
    from waypost.vocabulary.task import registered_tasks

    assert not [name for name in registered_tasks() if name.endswith("stray")]
    with pytest.raises(wp.DefinitionError, match="takes limit names"):
        wp.task(uses=[3])(lambda: None)  # type: ignore[list-item]


def test_uses_enters_the_graph_only_when_set() -> None:
    assert "uses" not in plain.graph.nodes["unlimited"].options
    assert rated_burst.graph.nodes["rated"].options["uses"] == ["it-rate"]
    assert slotted_burst.graph.nodes["slotted"].options["uses"] == ["it-slots"]
