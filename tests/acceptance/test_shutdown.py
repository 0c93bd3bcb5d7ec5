"""A worker told to stop (SIGTERM) finishes what it can within its grace period and gives
back the rest, uncharged, for another worker to take at once (both stores)."""

from __future__ import annotations

import pytest

import waypost as wp

from ._support import Workers, hold_step_on_first_worker, read_ledger

pytestmark = pytest.mark.slow


def test_a_stopping_worker_finishes_its_attempt_within_the_grace(db_url: str,
                                                                 workers: Workers) -> None:
    options = ("--concurrency", "1", "--poll", "0.05", "--grace", "10")
    with wp.Engine(db_url) as engine:
        first, _, run_id = hold_step_on_first_worker(workers, engine, options, 1.0)
        assert workers.stop(first) == 0
        # stopped, yet the step is done: the worker finished it before exiting
        assert engine.status(run_id) == "succeeded"
        assert engine.result(run_id) == first.pid
        (step,) = engine.show(run_id)["steps"]
    assert (step["attempts"], step["history"]) == (1, [])
    assert "1 succeeded" in workers.log(first)


def test_a_stopping_worker_gives_back_what_it_cannot_finish(db_url: str,
                                                            workers: Workers) -> None:
    options = ("--concurrency", "1", "--poll", "0.05", "--grace", "0.5", "--lease", "30")
    with wp.Engine(db_url) as engine:
        first, _, run_id = hold_step_on_first_worker(workers, engine, options, 3.0)
        assert workers.stop(first) == 0
        (step,) = engine.show(run_id)["steps"]
        # given back, not charged, and not waiting for the 30 s lease to run out
        assert (step["status"], step["attempts"], step["history"]) == ("ready", 0, [])
        assert read_ledger(workers.ledger) == [], "the body was cut short with the worker"

        second = workers.start(*options)
        assert engine.result(run_id, timeout=30) == second.pid
        (step,) = engine.show(run_id)["steps"]
    assert (step["attempts"], step["history"]) == (1, [])
