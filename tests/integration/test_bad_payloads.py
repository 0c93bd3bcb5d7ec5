"""Payloads that cannot cross a JSON boundary get a clear error where a user looks, and
nothing is half-written (both stores)."""

from __future__ import annotations

import pytest

import waypost as wp

from .helpers import result_of, step_of


@wp.task(retries=3, backoff=wp.Backoff(initial=0.01, jitter=False))
def returns_a_set(x: int) -> object:
    return {x, x + 1}


@wp.flow()
def unserialisable(x: int) -> object:
    return returns_a_set(x)


@wp.task()
def echo(value: object) -> object:
    return value


@wp.flow()
def echo_flow(value: object) -> object:
    return echo(value)


def test_an_output_that_is_not_json_fails_at_once(engine: wp.Engine) -> None:
    run_id = engine.start(unserialisable, {"x": 1})
    with engine.serving() as worker, pytest.raises(wp.RunFailed, match="JSON"):
        result_of(engine, worker, run_id)
    step = step_of(engine.show(run_id), "returns_a_set")
    assert step["attempts"] == 1, "retrying cannot make a value JSON: no retries"
    assert step["error"]["type"] == "TypeError"
    assert "returns_a_set" in step["error"]["traceback"] or step["error"]["traceback"]


def test_an_input_that_is_not_json_is_refused_before_anything_is_written(
        engine: wp.Engine) -> None:
    with pytest.raises(wp.InputError, match="JSON"):
        engine.start(echo_flow, {"value": {1, 2}})
    assert engine.runs() == []


def test_json_values_round_trip_exactly(engine: wp.Engine) -> None:
    value = {"text": "naïve ☃", "n": [1, 2.5, None, True], "nested": {"$ref": "not a ref"}}
    assert engine.run(echo_flow, {"value": value}, timeout=30) == value
