"""A commit that went through but whose acknowledgement was lost (the connection dropped
right after COMMIT) is retried by the store. The retry must not start a second run, and
must not leave the steps the first try claimed running with nobody working on them
(both stores)."""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import waypost as wp
from waypost.store.postgres import PostgresStore
from waypost.store.sqlite import SqliteStore

EXECUTIONS: Counter[int] = Counter()


@wp.task()
def count_step(x: int) -> int:
    EXECUTIONS[x] += 1
    return x + 1


@wp.flow()
def ack_chain(x: int) -> int:
    for _ in range(12):
        x = count_step(x)
    return x


@pytest.fixture
def lossy_commits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every third COMMIT is applied, then reported as a dropped connection."""
    lost: Counter[str] = Counter()
    calls = itertools.count(1)
    errors: dict[type[Any], Exception] = {
        SqliteStore: sqlite3.OperationalError("database is locked (injected after COMMIT)"),
        PostgresStore: psycopg.OperationalError("connection lost (injected after COMMIT)"),
    }
    for cls, error in errors.items():
        original = cls._commit

        def commit(self: Any, original: Any = original, error: Exception = error) -> None:
            original(self)
            if next(calls) % 3 == 0:
                lost["commits"] += 1
                raise error

        monkeypatch.setattr(cls, "_commit", commit)
    yield lost


def test_lost_commit_acknowledgements_lose_and_double_nothing(
        engine: wp.Engine, lossy_commits: Counter[str]) -> None:
    EXECUTIONS.clear()
    run_ids = [engine.start(ack_chain, {"x": 100 * i}) for i in range(3)]
    with engine.serving():
        results = [engine.result(r, timeout=60) for r in run_ids]
    assert results == [100 * i + 12 for i in range(3)]
    assert lossy_commits["commits"] > 5, "no acknowledgement was lost: nothing was tested"
    assert len(engine.runs()) == 3, "a retried start must not create a second run"
    assert set(EXECUTIONS.values()) == {1}, "a step ran twice"
    for run_id in run_ids:
        assert all(s["attempts"] == 1 for s in engine.show(run_id)["steps"])
