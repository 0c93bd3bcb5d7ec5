"""What `engine.start` refuses before anything is written, on both stores: keys a store
cannot keep, and values nested too deeply to cross the JSON boundary safely."""

from __future__ import annotations

import hashlib

import pytest

import waypost as wp
from tests.flows.behaviour import adder

from .helpers import result_of, step_of


@pytest.mark.parametrize("key", ["a\0b", "x" * 1025, "\udcff", "é" * 513],
                         ids=["nul", "too-long", "not-utf8", "too-long-utf8"])
def test_a_key_a_store_cannot_keep_is_refused(engine: wp.Engine, key: str) -> None:
    with pytest.raises(wp.InputError, match="idempotency key"):
        engine.start(adder, {"a": 1}, key=key)
    assert engine.runs() == []
    run_id = engine.start(adder, {"a": 1}, key="é" * 512)
    assert engine.start(adder, {"a": 1}, key="é" * 512) == run_id


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@wp.task()
def echo(value: object) -> object:
    return value


@wp.flow()
def echo_flow(value: object) -> object:
    return echo(value)


@wp.task(retries=3, backoff=wp.Backoff(initial=0.01, jitter=False))
def deep_output(levels: int) -> object:
    return nested(levels)


@wp.flow()
def deep_flow(levels: int) -> object:
    return echo(deep_output(levels))


@pytest.mark.parametrize("levels", [101, 980, 10_000])
def test_an_input_nested_too_deeply_is_refused_at_start(engine: wp.Engine,
                                                        levels: int) -> None:
    with pytest.raises(wp.InputError, match="nested deeper than 100"):
        engine.start(echo_flow, {"value": nested(levels)})
    assert engine.runs() == []
    # At the limit it runs, through a real worker, to the same value.
    value = nested(99)  # 100 deep as the run's input object
    assert engine.run(echo_flow, {"value": value}, timeout=30) == value


@pytest.mark.parametrize("levels", [101, 985])
def test_an_output_nested_too_deeply_fails_its_step_once(engine: wp.Engine,
                                                         levels: int) -> None:
    run_id = engine.start(deep_flow, {"levels": levels})
    with engine.serving() as worker:
        with pytest.raises(wp.RunFailed, match="nested deeper than 100"):
            result_of(engine, worker, run_id)
        view = engine.show(run_id)
        step = step_of(view, "deep_output")
        assert (step["status"], step["attempts"]) == ("failed", 1)  # no retry: same again
        assert step["error"]["type"] == "TypeError"
        # The worker lives on and serves the next run.
        assert result_of(engine, worker, engine.start(deep_flow, {"levels": 100})) == \
            nested(100)


# -- checksums ---------------------------------------------------------------------------
def test_input_checksum_is_the_full_sha256_of_the_canonical_json(engine: wp.Engine) -> None:
    run_id = engine.start(echo_flow, {"value": {"b": 2, "a": "é"}})
    canonical = '{"value":{"a":"\\u00e9","b":2}}'
    expected = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    assert engine.show(run_id)["input_checksum"] == expected
    [step] = engine.show(run_id)["steps"]
    step_text = '{"args":[{"a":"\\u00e9","b":2}],"kwargs":{}}'
    assert step["input_checksum"] == "sha256:" + hashlib.sha256(step_text.encode()).hexdigest()


def test_a_run_stored_with_the_old_half_checksum_is_found_by_its_key(
        engine: wp.Engine) -> None:
    run_id = engine.start(adder, {"a": 1}, key="before-the-change")
    full = engine.show(run_id)["input_checksum"]
    old = full[:len("sha256:") + 32]  # what waypost stored before the full digest
    engine._store().transact(lambda tx: tx.execute(
        "UPDATE runs SET input_checksum = ? WHERE id = ?", (old, run_id)))
    assert engine.show(run_id)["input_checksum"] == old
    assert engine.start(adder, {"a": 1, "b": 2}, key="before-the-change") == run_id
    with pytest.raises(wp.IdempotencyConflict):
        engine.start(adder, {"a": 2}, key="before-the-change")
    assert [r["id"] for r in engine.runs()] == [run_id]


@wp.task(retries=3, backoff=wp.Backoff(initial=0.01, jitter=False))
def echo_again(value: object) -> object:
    return value


@wp.flow()
def retried_echo(value: object) -> object:
    return echo_again(value)


def test_a_step_input_that_cannot_be_decoded_fails_the_attempt_not_the_worker(
        engine: wp.Engine) -> None:
    """A row written before the cap (or by hand) that no worker can decode: its attempt
    fails for good, once (a retry would decode no better), and the worker lives on."""
    run_id = engine.start(retried_echo, {"value": 1})
    deep = "[" * 990 + "1" + "]" * 990
    engine._store().transact(lambda tx: tx.execute(
        "UPDATE steps SET input = ? WHERE run_id = ?",
        (f'{{"args":[{deep}],"kwargs":{{}}}}', run_id)))
    with engine.serving() as worker:
        with pytest.raises(wp.RunFailed, match="cannot be decoded"):
            result_of(engine, worker, run_id)
        [step] = engine._store().read(lambda tx: tx.steps_of(run_id))  # raw: the view
        assert (step["status"], step["attempts"]) == ("failed", 1)  # would decode the input
        assert '"type":"Fatal"' in step["error"]
        assert result_of(engine, worker, engine.start(retried_echo, {"value": 2})) == 2
