"""Regression tests for defects of the runtime found by review (issue 7), both stores:
what a flow's data cannot render fails the run, not the worker (2); a replay follows
resume's rules (6); the flow body runs outside the write transaction (8); two resumes at
once reset nothing twice (9)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

import waypost as wp
from waypost.store.postgres import split_url
from waypost.store.sql import SqlTx

from .helpers import result_of, step_of

QUICK = wp.Backoff(initial=0.01, jitter=False)


# -- defect 2: an output that cannot be rendered ---------------------------------------------
@wp.task()
def make() -> dict:
    return {}


@wp.task()
def use(value: Any) -> str:
    return f"used {value}"


@wp.flow()
def returns_a_missing_key() -> str:
    return make()["id"]


@wp.flow()
def passes_a_missing_key() -> str:
    return use(make()["id"])


@wp.task()
def plus_one(x: int) -> int:
    return x + 1


@wp.flow()
def healthy(x: int) -> int:
    return plus_one(x)


@pytest.mark.parametrize("flow", [returns_a_missing_key, passes_a_missing_key])
def test_an_output_that_cannot_be_rendered_fails_its_run_not_the_worker(
        engine: wp.Engine, flow: wp.Flow[Any, Any]) -> None:
    bad = engine.start(flow, {})
    good = engine.start(healthy, {"x": 1})
    with engine.serving() as worker:
        with pytest.raises(wp.RunFailed) as failed:
            result_of(engine, worker, bad)
        assert result_of(engine, worker, good) == 2
        after = engine.start(healthy, {"x": 41})
        assert result_of(engine, worker, after) == 42, "the worker must still serve"
    message = failed.value.error["message"]
    assert "make" in message and "'id'" in message, message
    assert engine.status(bad) == "failed"


# -- defect 6: replay of a letter of a cancelled run ---------------------------------------------
@wp.task(backoff=QUICK)
def checked(x: int) -> int:
    if x < 0:
        raise wp.Fatal(f"negative: {x}")
    return x


@wp.task(heartbeat=0.5)
def held_open(path: str, ctx: wp.Context) -> str:
    while Path(path).exists():
        ctx.heartbeat()
        time.sleep(0.05)
    return "released"


@wp.flow()
def two_branches(x: int, path: str) -> list:
    return [checked(x), held_open(path)]


def _until(engine: wp.Engine, run_id: str, step: str, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while step_of(engine.show(run_id), step)["status"] != status:
        assert time.monotonic() < deadline, f"{step} never became {status}"
        time.sleep(0.05)


def test_a_replay_of_a_cancelled_runs_letter_reopens_all_it_left_unfinished(
        engine: wp.Engine, tmp_path: Path) -> None:
    gate = tmp_path / "hold"
    gate.write_text("")
    run_id = engine.start(two_branches, {"x": -1, "path": str(gate)})
    with engine.serving(lease=2.0) as worker:
        _until(engine, run_id, "checked", "failed")
        _until(engine, run_id, "held_open", "running")
        engine.cancel(run_id)
        gate.unlink()
        [letter] = engine.dead_letters(run_id=run_id)
        engine.replay(letter["id"], input={"args": [5], "kwargs": {}})
        assert result_of(engine, worker, run_id) == [5, "released"]
    view = engine.show(run_id)
    assert {s["name"]: s["status"] for s in view["steps"]} == {
        "checked": "succeeded", "held_open": "succeeded"}


# -- defect 8: the flow body runs outside the write transaction ---------------------------------
SEEN: dict[str, Any] = {}


def _in_write_transaction(url: str) -> bool:
    """Whether some connection of this store holds a write transaction open now."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                           "AND state LIKE 'idle in transaction%%'",
                           (f"waypost:{schema}",)).fetchone()
        return bool(row and row[0])


def test_the_flow_body_runs_outside_any_transaction(engine: wp.Engine, db_url: str) -> None:
    @wp.flow(name=f"built-late-{time.monotonic_ns()}")
    def built_late(x: int) -> int:
        SEEN["locked"] = _in_write_transaction(db_url)
        return plus_one(x)

    run_id = engine.start(built_late, {"x": 1})
    assert SEEN.pop("locked") is False, "the flow body ran inside the start transaction"
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == 2


# -- defect 9: two resumes at once ----------------------------------------------------------
RUNS: list[int] = []


@wp.task(backoff=QUICK)
def fixed_later(path: str) -> str:
    RUNS.append(1)
    if not Path(path).exists():
        raise wp.Fatal("not fixed yet")
    return "done"


@wp.flow()
def needs_a_fix(path: str) -> str:
    return fixed_later(path)


def test_two_resumes_at_once_run_the_step_once(engine: wp.Engine, db_url: str,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    RUNS.clear()
    fix = tmp_path / "fixed"
    run_id = engine.start(needs_a_fix, {"path": str(fix)})
    with engine.serving() as worker, pytest.raises(wp.RunFailed):
        result_of(engine, worker, run_id)
    fix.write_text("")
    # The first resume pauses after reading the run's steps; the second runs meanwhile.
    paused, go_on = threading.Event(), threading.Event()
    original = SqlTx.steps_of

    def steps_of(self: SqlTx, run: str) -> Any:
        rows = original(self, run)
        if threading.current_thread().name == "first" and not paused.is_set():
            paused.set()
            go_on.wait(20)
        return rows

    monkeypatch.setattr(SqlTx, "steps_of", steps_of)
    outcomes: dict[str, Any] = {}

    def resume(name: str) -> None:
        other = wp.Engine(db_url)
        try:
            outcomes[name] = other.resume(run_id)
        except wp.WaypostError as exc:
            outcomes[name] = exc
        finally:
            other.close()

    first = threading.Thread(target=resume, args=("first",), name="first")
    first.start()
    assert paused.wait(20)
    second = threading.Thread(target=resume, args=("second",), name="second")
    with engine.serving() as worker:
        second.start()
        # Unlocked, the second resume commits and the worker completes the step meanwhile.
        deadline = time.monotonic() + 3
        while engine.status(run_id) != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.05)
        go_on.set()
        first.join(30)
        second.join(30)
        assert result_of(engine, worker, run_id) == "done"
        time.sleep(0.5)  # a step set back to ready would run again now
    assert sum(isinstance(o, int) for o in outcomes.values()) == 1, outcomes
    assert sum(isinstance(o, wp.InputError) for o in outcomes.values()) == 1, outcomes
    assert len(RUNS) == 2, "the fixed step ran more than once after the resumes"
    assert engine.status(run_id) == "succeeded"
