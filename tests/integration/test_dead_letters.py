"""Dead letters, replay and retry budgets (both stores): a step out of attempts is kept
with its input and every attempt's error; a replay continues its run from that step (a
patched input is recorded as such); a retry budget stops a failure from multiplying calls."""

from __future__ import annotations

from pathlib import Path

import pytest

import waypost as wp

from .helpers import step_of

QUICK = wp.Backoff(initial=0.01, jitter=False)


@wp.task(retries=1, backoff=QUICK)
def divide(a: int, b: int) -> float:
    return a / b


@wp.task()
def announce(value: float) -> str:
    return f"= {value:g}"


@wp.flow()
def division(a: int, b: int) -> str:
    return announce(divide(a, b))


def test_a_dead_step_is_kept_with_its_input_and_every_attempt(engine: wp.Engine) -> None:
    run_id = engine.start(division, {"a": 10, "b": 0})
    with engine.serving(), pytest.raises(wp.RunFailed, match="division by zero"):
        engine.result(run_id, timeout=15)
    [letter] = engine.dead_letters(run_id=run_id)
    assert (letter["step"], letter["status"], letter["attempts"]) == ("divide", "dead", 2)
    assert letter["task"].endswith(":divide")
    assert letter["input"] == {"args": [10, 0], "kwargs": {}}
    assert letter["error"]["type"] == "ZeroDivisionError"
    full = engine.dead_letter(letter["id"])
    assert [h["outcome"] for h in full["history"]] == ["failed", "failed"]
    assert all("ZeroDivisionError" in h["error"]["traceback"] for h in full["history"])
    assert engine.show(run_id)["dead_letters"] == [
        {"id": letter["id"], "step": "divide", "status": "dead"}]
    with pytest.raises(wp.UnknownTargetError, match="no dead letter"):
        engine.dead_letter(10_000)


def test_replay_with_a_patched_input_continues_the_run_from_that_step(
        engine: wp.Engine) -> None:
    run_id = engine.start(division, {"a": 10, "b": 0})
    with engine.serving():
        with pytest.raises(wp.RunFailed):
            engine.result(run_id, timeout=15)
        [letter] = engine.dead_letters(run_id=run_id)
        with pytest.raises(wp.InputError, match="args"):
            engine.replay(letter["id"], {"a": 10, "b": 4})
        assert engine.replay(letter["id"], {"args": [10, 4], "kwargs": {}}) == run_id
        assert engine.result(run_id, timeout=15) == "= 2.5"
        with pytest.raises(wp.InputError, match="already replayed"):
            engine.replay(letter["id"])
    view = engine.show(run_id)
    step = step_of(view, "divide")
    assert step["input"] == {"args": [10, 4], "kwargs": {}}
    replayed = [h for h in step["history"] if h["outcome"] == "replayed"]
    assert replayed[0]["error"] == {"dead_letter": letter["id"], "patched_input": True}
    after = engine.dead_letter(letter["id"])
    assert after["status"] == "replayed" and after["replay_input"] == {"args": [10, 4],
                                                                       "kwargs": {}}
    assert after["input"] == {"args": [10, 0], "kwargs": {}}  # what it died with, kept
    assert engine.dead_letters(run_id=run_id) == []  # only dead ones by default
    assert len(engine.dead_letters(status=None, run_id=run_id)) == 1


@wp.task()
def invert(x: int) -> float:
    return 1 / x


@wp.task()
def total(values: list[float]) -> float:
    return sum(values)


@wp.flow()
def inversions(xs: list[int]) -> float:
    return total(invert.map(xs))


def test_replaying_a_dead_map_item_lets_the_map_and_what_follows_finish(
        engine: wp.Engine) -> None:
    run_id = engine.start(inversions, {"xs": [1, 0, 2]})
    with engine.serving():
        with pytest.raises(wp.RunFailed):
            engine.result(run_id, timeout=15)
        [letter] = engine.dead_letters(run_id=run_id)
        assert letter["step"] == "invert[1]"
        engine.replay(letter["id"], {"args": [4], "kwargs": {}})
        assert engine.result(run_id, timeout=15) == 1.75


def test_resume_counts_as_a_replay_of_the_dead_letters(engine: wp.Engine) -> None:
    run_id = engine.start(division, {"a": 1, "b": 0})
    with engine.serving(), pytest.raises(wp.RunFailed):
        engine.result(run_id, timeout=15)
    [letter] = engine.dead_letters(run_id=run_id)
    engine.resume(run_id)
    assert engine.dead_letter(letter["id"])["status"] == "replayed"
    with pytest.raises(wp.InputError, match="already replayed"):
        engine.replay(letter["id"])


def _calls(path: Path) -> int:
    return len(path.read_text()) if path.exists() else 0


@wp.task(retries=5, backoff=QUICK, retry_budget="2/minute")
def flaky_api(counter: str) -> None:
    with open(counter, "a") as f:
        f.write("x")
    raise ConnectionError("upstream is down")


@wp.flow()
def calls_api(counter: str) -> None:
    flaky_api(counter)


def test_a_retry_budget_caps_retries_across_runs_and_shows_what_it_refused(
        engine: wp.Engine, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    first = engine.start(calls_api, {"counter": str(counter)})
    with engine.serving():
        with pytest.raises(wp.RunFailed, match="retry budget"):
            engine.result(first, timeout=15)
        assert _calls(counter) == 3  # 1 call + the 2 retries the budget allows
        second = engine.start(calls_api, {"counter": str(counter)})
        with pytest.raises(wp.RunFailed, match="retry budget"):
            engine.result(second, timeout=15)
    assert _calls(counter) == 4  # the second run got no retry at all, not 6
    step = step_of(engine.show(second), "flaky_api")
    assert step["error"]["type"] == "RetryBudgetExhausted"
    assert "ConnectionError: upstream is down" in step["error"]["message"]
    assert step["retry_budget"] == {"retries": 2, "per_seconds": 60.0, "used": 2,
                                    "refused": 2, "refused_total": 2}
    [letter] = engine.dead_letters(run_id=second)
    assert letter["error"]["type"] == "RetryBudgetExhausted"


def test_a_retry_budget_is_written_as_a_rate() -> None:
    with pytest.raises(wp.DefinitionError, match="200/minute"):
        wp.task(retry_budget="lots")(lambda: None)
