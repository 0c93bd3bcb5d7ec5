"""An outcome the database refuses for good (a value it cannot store) or that a defect
cannot record must not kill the worker or take the outcomes recorded beside it down with
it: the others commit, and the refused one is its attempt's failure (both stores)."""

from __future__ import annotations

from typing import Any

import pytest

import waypost as wp
from waypost.errors import DatabaseRefused
from waypost.store.sql import SqlTx

from .helpers import result_of


@wp.task()
def emit(value: str) -> str:
    return value


@wp.flow()
def one_value(value: str) -> str:
    return emit(value)


def test_a_refused_outcome_fails_its_step_and_spares_the_others(
        engine: wp.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    original = SqlTx.succeed

    def succeed(self: SqlTx, step_id: int, token: str, output: str) -> Any:
        if "poison" in output:
            raise DatabaseRefused("the database refused a value (injected): row too big")
        return original(self, step_id, token, output)

    def succeed_many(self: SqlTx, done: Any) -> Any:
        return [succeed(self, *d) for d in done]

    monkeypatch.setattr(SqlTx, "succeed", succeed)
    monkeypatch.setattr(SqlTx, "succeed_many", succeed_many)
    for cls in SqlTx.__subclasses__():  # PostgreSQL pipelines its own succeed_many
        monkeypatch.setattr(cls, "succeed_many", succeed_many, raising=False)
    runs = [engine.start(one_value, {"value": v}) for v in ("a", "poison", "b", "c")]
    with engine.serving(concurrency=4) as worker:
        outputs = {}
        for run_id in runs:
            try:
                outputs[run_id] = result_of(engine, worker, run_id)
            except wp.RunFailed as exc:
                outputs[run_id] = exc.error
        later = engine.start(one_value, {"value": "after"})
        assert result_of(engine, worker, later) == "after", "the worker must still serve"
    assert [outputs[r] for r in (runs[0], runs[2], runs[3])] == ["a", "b", "c"]
    failed = outputs[runs[1]]
    assert failed["type"] == "OutcomeRefused" and "refused a value" in failed["message"]
    [letter] = engine.dead_letters(run_id=runs[1])
    assert letter["step"] == "emit"
