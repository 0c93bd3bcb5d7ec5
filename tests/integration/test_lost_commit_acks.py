"""A commit that went through but whose acknowledgement was lost (the connection dropped
right after COMMIT) is retried by the store. The retry must not start a second run, and
must not leave the steps the first try claimed running with nobody working on them
(both stores)."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
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


def lose_acks(monkeypatch: pytest.MonkeyPatch, lose: Any) -> None:
    """After each COMMIT is applied, report it as a dropped connection when `lose()`."""
    errors: dict[type[Any], Exception] = {
        SqliteStore: sqlite3.OperationalError("database is locked (injected after COMMIT)"),
        PostgresStore: psycopg.OperationalError("connection lost (injected after COMMIT)"),
    }
    for cls, error in errors.items():
        original = cls._commit

        def commit(self: Any, original: Any = original, error: Exception = error) -> None:
            original(self)
            if lose():
                raise error

        monkeypatch.setattr(cls, "_commit", commit)


@pytest.fixture
def lossy_commits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every third COMMIT is applied, then reported as a dropped connection."""
    lost: Counter[str] = Counter()
    calls = itertools.count(1)

    def lose() -> bool:
        if next(calls) % 3:
            return False
        lost["commits"] += 1
        return True

    lose_acks(monkeypatch, lose)
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


# -- operators' requests (issue 7, defect 7) ----------------------------------------------------
class _LoseNext:
    """Arms the loss of the next COMMIT's acknowledgement (the commit itself applies)."""

    def __init__(self) -> None:
        self.armed = False
        self.lost = 0

    def __call__(self) -> None:
        self.armed = True


@pytest.fixture
def lose_next_ack(monkeypatch: pytest.MonkeyPatch) -> Iterator[_LoseNext]:
    switch = _LoseNext()

    def lose() -> bool:
        if not switch.armed:
            return False
        switch.armed = False
        switch.lost += 1
        return True

    lose_acks(monkeypatch, lose)
    yield switch


QUICK = wp.Backoff(initial=0.01, jitter=False)


@wp.task(completes_externally=True)
def hand_over(x: int) -> None:
    return None


@wp.task()
def after_hand_over(answer: dict) -> str:
    return f"got {answer['value']}"


@wp.flow()
def handed_over(x: int) -> str:
    return after_hand_over(hand_over(x))


@wp.task()
def before_gate() -> int:
    return 1


@wp.flow()
def gated_flow() -> dict:
    first = before_gate()
    return {"first": first, "gate": wp.gate("go")}


@wp.task(escalate_after=1, backoff=QUICK)
def asks_for_help(flag: str) -> str:
    if not Path(flag).exists():
        raise ConnectionError("not yet")
    return "helped"


@wp.flow()
def needs_help(flag: str) -> str:
    return asks_for_help(flag)


def _wait(engine: wp.Engine, run_id: str, status: str, step: str | None = None) -> None:
    deadline = time.monotonic() + 20
    while True:
        view = engine.show(run_id)
        now = view["status"] if step is None else next(
            s["status"] for s in view["steps"] if s["name"] == step)
        if now == status:
            return
        assert time.monotonic() < deadline, f"{step or 'run'} never became {status}"
        time.sleep(0.05)


def test_complete_under_a_lost_ack_succeeds_once(engine: wp.Engine,
                                                 lose_next_ack: _LoseNext) -> None:
    run_id = engine.start(handed_over, {"x": 1})
    with engine.serving():
        _wait(engine, run_id, "running", "hand_over")
        deadline = time.monotonic() + 20
        while not engine.show(run_id)["steps"][0]["completion_token"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        token = engine.show(run_id)["steps"][0]["completion_token"]
        lose_next_ack()
        assert engine.complete(token, {"value": 7}) == run_id
        assert lose_next_ack.lost == 1
        assert engine.result(run_id, timeout=20) == "got 7"
        with pytest.raises(wp.InputError, match="already used"):
            engine.complete(token, {"value": 8})


def test_cancel_under_a_lost_ack_succeeds(engine: wp.Engine, lose_next_ack: _LoseNext) -> None:
    run_id = engine.start(gated_flow, {})
    lose_next_ack()
    engine.cancel(run_id)
    assert lose_next_ack.lost == 1
    assert engine.status(run_id) == "cancelled"
    with pytest.raises(wp.InputError, match="already cancelled"):
        engine.cancel(run_id)


@pytest.mark.parametrize("approve", [True, False])
def test_a_gate_decided_under_a_lost_ack_is_decided_once(
        engine: wp.Engine, lose_next_ack: _LoseNext, approve: bool) -> None:
    run_id = engine.start(gated_flow, {})
    with engine.serving():
        _wait(engine, run_id, "waiting", "go")
        lose_next_ack()
        if approve:
            engine.approve(run_id, "go", by="ann")
        else:
            engine.reject(run_id, "go", reason="no", by="ann")
        assert lose_next_ack.lost == 1
        if approve:
            assert engine.result(run_id, timeout=20)["gate"]["by"] == "ann"
        else:
            with pytest.raises(wp.RunFailed, match="rejected by ann"):
                engine.result(run_id, timeout=20)
    history = next(s for s in engine.show(run_id)["steps"] if s["name"] == "go")["history"]
    assert [h["outcome"] for h in history] == ["approved" if approve else "rejected"]


@pytest.mark.parametrize("answer", ["retry", "skip", "fail"])
def test_an_operators_answer_under_a_lost_ack_is_applied_once(
        engine: wp.Engine, lose_next_ack: _LoseNext, tmp_path: Path, answer: str) -> None:
    flag = tmp_path / "flag"
    run_id = engine.start(needs_help, {"flag": str(flag)})
    with engine.serving():
        _wait(engine, run_id, "needs_attention")
        flag.write_text("")
        lose_next_ack()
        if answer == "retry":
            engine.retry_step(run_id, "asks_for_help", by="op")
            assert engine.result(run_id, timeout=20) == "helped"
        elif answer == "skip":
            engine.skip_step(run_id, "asks_for_help", "skipped", by="op")
            assert engine.result(run_id, timeout=20) == "skipped"
        else:
            engine.fail_step(run_id, "asks_for_help", by="op")
            with pytest.raises(wp.RunFailed):
                engine.result(run_id, timeout=20)
        assert lose_next_ack.lost == 1
    history = next(s for s in engine.show(run_id)["steps"]
                   if s["name"] == "asks_for_help")["history"]
    decisions = [h["outcome"] for h in history if h["attempt"] is None]
    assert decisions == [{"retry": "retried", "skip": "skipped", "fail": "failed"}[answer]]
