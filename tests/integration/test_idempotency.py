"""Idempotency keys on both stores: a repeat gives the same run, a conflict creates nothing."""

from __future__ import annotations

import threading

import pytest

import waypost as wp
from tests.flows import behaviour as flows

from .helpers import result_of


def test_same_key_same_input_gives_the_same_run(engine: wp.Engine):
    first = engine.start(flows.adder, {"a": 1, "b": 2}, key="order-7")
    again = engine.start(flows.adder, {"a": 1, "b": 2}, key="order-7")
    assert again == first
    # A default filled in explicitly is the same input.
    assert engine.start(flows.adder, {"a": 1}, key="order-7") == first
    runs = engine.runs()
    assert [r["id"] for r in runs] == [first]
    assert runs[0]["key"] == "order-7"

    with engine.serving() as worker:
        assert result_of(engine, worker, first) == 3
    # After it finished, the key still names that run: nothing runs again.
    assert engine.start(flows.adder, {"a": 1, "b": 2}, key="order-7") == first
    assert len(engine.runs()) == 1
    assert engine.status(first) == "succeeded"


def test_same_key_different_input_is_a_conflict(engine: wp.Engine):
    first = engine.start(flows.adder, {"a": 1, "b": 2}, key="order-8")
    with pytest.raises(wp.IdempotencyConflict) as info:
        engine.start(flows.adder, {"a": 1, "b": 3}, key="order-8")
    assert "order-8" in str(info.value)
    assert info.value.key == "order-8"
    assert info.value.existing_run == first
    assert [r["id"] for r in engine.runs()] == [first]
    assert engine.show(first)["input"] == {"a": 1, "b": 2}


def test_same_key_different_flow_is_a_conflict(engine: wp.Engine, workdir: str):
    first = engine.start(flows.adder, {"a": 1}, key="shared")
    with pytest.raises(wp.IdempotencyConflict, match="shared"):
        engine.start(flows.fixable, {"workdir": workdir}, key="shared")
    assert [r["id"] for r in engine.runs()] == [first]


def test_without_a_key_every_start_is_a_new_run(engine: wp.Engine):
    ids = {engine.start(flows.adder, {"a": 1}) for _ in range(3)}
    assert len(ids) == 3
    other = engine.start(flows.adder, {"a": 1}, key="k1")
    assert engine.start(flows.adder, {"a": 1}, key="k2") != other
    assert len(engine.runs()) == 5


def test_concurrent_starts_with_one_key_make_one_run(db_url: str):
    engines = [wp.Engine(db_url) for _ in range(6)]
    barrier = threading.Barrier(len(engines))
    ids: list[str] = []
    errors: list[BaseException] = []

    def start(engine: wp.Engine) -> None:
        barrier.wait()
        try:
            ids.append(engine.start(flows.adder, {"a": 5, "b": 5}, key="race"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors, errors
        assert len(ids) == len(engines)
        assert len(set(ids)) == 1
        assert [r["id"] for r in engines[0].runs()] == ids[:1]
    finally:
        for e in engines:
            e.close()
