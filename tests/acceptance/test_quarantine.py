"""Acceptance: a task that kills its own worker process is the one that reaches the
dead-letter queue; the attempts that happened to run beside it are not charged.

Real `waypost worker` processes (concurrency 2), restarted each time one dies, as a
supervisor would. A step lost in a crash is next claimed alone, and only a loss while
alone counts toward the lost-attempts limit."""

from __future__ import annotations

import time

import pytest

import waypost as wp
from tests.flows.crash import bystander, poisoned
from waypost.runtime.core.retries import LOST_ATTEMPTS_LIMIT

from ._support import Workers, read_ledger, steps_by_name

pytestmark = pytest.mark.slow

OPTIONS = ("--concurrency", "2", "--lease", "30", "--poll", "0.05")


def test_a_poison_pill_reaches_the_dead_letters_and_its_neighbour_finishes(
        db_url: str, workers: Workers) -> None:
    """Defect 10: both steps were claimed together after every crash, and the innocent
    one failed with "lost its worker 10 times" like the culprit."""
    engine = wp.Engine(db_url)
    try:
        victim = engine.start(bystander, {"n": 21})
        culprit = engine.start(poisoned, {})  # both ready: the first worker claims both
        proc = workers.start(*OPTIONS)
        deaths = 0
        deadline = time.monotonic() + 240
        while engine.status(culprit) == "running" or engine.status(victim) != "succeeded":
            if engine.status(victim) == "failed":
                break
            assert time.monotonic() < deadline, workers.all_logs()
            if proc.poll() is not None:
                deaths += 1
                assert deaths <= 3 * LOST_ATTEMPTS_LIMIT, workers.all_logs()
                proc = workers.start(*OPTIONS)
            time.sleep(0.05)

        assert engine.status(victim) == "succeeded", engine.show(victim)
        assert engine.result(victim, timeout=1) == 42
        executions = [e for e in read_ledger(workers.ledger) if e["run"] == victim]
        assert len(executions) == 1, "the innocent step finished once"

        assert engine.status(culprit) == "failed"
        step = steps_by_name(engine.show(culprit))["poison"]
        assert f"lost its worker {LOST_ATTEMPTS_LIMIT} times" in step["error"]["message"]
        assert [letter["step"] for letter in engine.dead_letters()] == ["poison"]
        if proc.poll() is None:
            assert workers.stop(proc) == 0
    finally:
        engine.close()
