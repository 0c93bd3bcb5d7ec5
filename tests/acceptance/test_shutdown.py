"""A worker told to stop (SIGTERM, Ctrl-C) finishes what it can within its grace period and
gives back the rest, uncharged, for another worker to take at once (both stores). What it
gave back stays in the history as `released`, with the reason, and keeps its number. A
second Ctrl-C gives back at once and exits."""

from __future__ import annotations

import signal

import pytest

import waypost as wp

from ._support import Workers, hold_step_on_first_worker, read_ledger, wait_for

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
        # given back, not charged, and not waiting for the 30 s lease to run out; the
        # interrupted attempt stays in the history with its number and the reason
        assert (step["status"], step["attempts"], step["max_attempts"]) == ("ready", 1, 2)
        (released,) = step["history"]
        assert (released["attempt"], released["outcome"]) == (1, "released")
        assert "SIGTERM" in released["error"]["message"]
        assert read_ledger(workers.ledger) == [], "the body was cut short with the worker"

        second = workers.start(*options)
        assert engine.result(run_id, timeout=30) == second.pid
        (step,) = engine.show(run_id)["steps"]
    assert (step["attempts"], [h["outcome"] for h in step["history"]]) == (2, ["released"])


def test_a_second_ctrl_c_gives_back_at_once_and_exits(db_url: str, workers: Workers) -> None:
    options = ("--concurrency", "1", "--poll", "0.05", "--grace", "120", "--lease", "120")
    with wp.Engine(db_url) as engine:
        first, _, run_id = hold_step_on_first_worker(workers, engine, options, 30.0)
        first.send_signal(signal.SIGINT)
        wait_for(lambda: "finishing running attempts" in workers.log(first), 10,
                 "the first Ctrl-C to be seen")
        assert first.poll() is None, "the first Ctrl-C waits for the attempt (grace 120 s)"
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)  # well before the grace or the lease could run out
        (step,) = engine.show(run_id)["steps"]
    assert (step["status"], step["attempts"]) == ("ready", 1)
    (released,) = step["history"]
    assert released["outcome"] == "released" and "SIGINT twice" in released["error"]["message"]

