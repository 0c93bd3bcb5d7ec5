"""Escalation to an operator (both stores): after N failed attempts the run waits as
`needs_attention`; an operator retries, skips or fails the step; nobody answering within
`escalation_timeout` fails it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import waypost as wp

from .helpers import step_of

QUICK = wp.Backoff(initial=0.01, jitter=False)


@wp.task(escalate_after=2, backoff=QUICK)
def sync_ledger(flag: str) -> str:
    if not Path(flag).exists():
        raise ConnectionError("ledger unreachable")
    return "synced"


@wp.task()
def report(status: Any) -> str:
    return f"report: {status}"


@wp.flow()
def ledger(flag: str) -> str:
    return report(sync_ledger(flag))


@wp.task(escalate_after=1, escalation_timeout=0.3)
def hopeless() -> None:
    raise RuntimeError("no luck")


@wp.flow()
def unanswered() -> None:
    hopeless()


def _attention(engine: wp.Engine, run_id: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while engine.status(run_id) != "needs_attention":
        assert time.monotonic() < deadline, engine.status(run_id)
        time.sleep(0.02)
    return engine.show(run_id)


def test_after_n_failures_the_run_waits_for_an_operator_who_retries(
        engine: wp.Engine, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    run_id = engine.start(ledger, {"flag": str(flag)})
    with engine.serving():
        view = _attention(engine, run_id)
        step = step_of(view, "sync_ledger")
        assert step["status"] == "needs_attention" and step["attempts"] == 2
        assert step["error"]["type"] == "ConnectionError"
        assert "waypost retry, skip or fail RUN sync_ledger" in step["waiting"]
        with pytest.raises(wp.InputError, match="is pending"):
            engine.retry_step(run_id, "report")

        engine.retry_step(run_id, "sync_ledger", by="erin")  # still broken: 2 more tries
        deadline = time.monotonic() + 15
        while step_of(engine.show(run_id), "sync_ledger")["attempts"] < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        view = _attention(engine, run_id)
        flag.write_text("")
        engine.retry_step(run_id, "sync_ledger", by="erin")
        assert engine.result(run_id, timeout=15) == "report: synced"
    history = step_of(engine.show(run_id), "sync_ledger")["history"]
    assert [h["outcome"] for h in history] == ["failed", "failed", "retried", "failed",
                                               "failed", "retried"]
    assert history[2]["worker"] == "erin" and history[2]["attempt"] is None


def test_an_operator_can_skip_the_step_with_an_output_or_fail_it(
        engine: wp.Engine, tmp_path: Path) -> None:
    skipped = engine.start(ledger, {"flag": str(tmp_path / "never")})
    failed = engine.start(ledger, {"flag": str(tmp_path / "never")})
    with engine.serving():
        _attention(engine, skipped)
        engine.skip_step(skipped, "sync_ledger", {"manual": True}, by="frank")
        assert engine.result(skipped, timeout=15) == "report: {'manual': True}"
        _attention(engine, failed)
        engine.fail_step(failed, "sync_ledger", by="frank")
        with pytest.raises(wp.RunFailed, match="failed by frank"):
            engine.result(failed, timeout=15)
    assert step_of(engine.show(failed), "report")["status"] == "upstream_failed"
    [letter] = engine.dead_letters(run_id=failed)
    assert letter["error"]["type"] == "FailedByOperator"


def test_nobody_answering_within_the_escalation_timeout_fails_the_step(
        engine: wp.Engine) -> None:
    run_id = engine.start(unanswered)
    with engine.serving(lease=1.5), pytest.raises(wp.RunFailed, match="escalation_timeout"):
        engine.result(run_id, timeout=15)
    step = step_of(engine.show(run_id), "hopeless")
    assert step["error"]["type"] == "EscalationTimeout"
    assert [h["outcome"] for h in step["history"]] == ["failed", "escalation_timeout"]


def test_escalate_after_gives_the_task_at_least_that_many_attempts() -> None:
    assert sync_ledger.options()["max_attempts"] == 2
    with pytest.raises(wp.DefinitionError, match="escalation_timeout needs escalate_after"):
        wp.task(escalation_timeout=5)(lambda: None)


@wp.task(escalate_after=1, escalation_timeout=0.3, on_escalation_timeout="skip")
def optional_enrichment() -> dict[str, Any]:
    raise RuntimeError("enrichment service down")


@wp.flow()
def enrich_or_not() -> str:
    return report(optional_enrichment())


@wp.task(escalate_after=1, escalation_timeout=0.3, on_escalation_timeout="retry",
         backoff=QUICK)
def second_chance(flag: str) -> str:
    if Path(flag).exists():
        return "second"
    Path(flag).write_text("")
    raise RuntimeError("first try fails")


@wp.flow()
def retried_on_timeout(flag: str) -> str:
    return second_chance(flag)


def test_on_escalation_timeout_decides_what_nobody_answering_means(
        engine: wp.Engine, tmp_path: Path) -> None:
    skipped = engine.start(enrich_or_not)
    retried = engine.start(retried_on_timeout, {"flag": str(tmp_path / "flag")})
    with engine.serving(lease=1.5):
        assert engine.result(skipped, timeout=15) == "report: None"
        assert engine.result(retried, timeout=15) == "second"
    history = step_of(engine.show(skipped), "optional_enrichment")["history"]
    assert [(h["outcome"], h["error"]["message"]) for h in history][-1] == (
        "escalation_timeout", "nobody answered in time: skipped")
    step = step_of(engine.show(retried), "second_chance")
    assert [h["outcome"] for h in step["history"]] == ["failed", "escalation_timeout"]
    with pytest.raises(wp.DefinitionError, match="on_escalation_timeout"):
        wp.task(escalate_after=1, on_escalation_timeout="shrug")(lambda: None)
