"""Retries on both stores: attempts, observed backoff, Fatal, exhausted retries."""

from __future__ import annotations

import pytest

import waypost as wp
from tests.flows import behaviour as flows

from .helpers import result_of, step_of, ts

# Times in `show` are ISO 8601 with milliseconds (truncated): allow for that rounding.
CLOCK = 0.002


def _gaps(step: dict) -> list[float]:
    """Seconds between each failed attempt's end and the next attempt's start."""
    history = step["history"]
    starts = [ts(h["started_at"]) for h in history[1:]] + [ts(step["started_at"])]
    return [start - ts(h["finished_at"]) for h, start in zip(history, starts, strict=True)]


def test_fails_twice_then_succeeds_after_declared_backoff(engine: wp.Engine, workdir: str):
    run_id = engine.start(flows.flaky_flow, {"workdir": workdir, "failures": 2})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == "ok on attempt 3"

    view = engine.show(run_id)
    assert view["status"] == "succeeded"
    step = step_of(view, "flaky")
    assert step["status"] == "succeeded"
    assert step["attempts"] == 3
    assert step["error"] is None
    assert flows.executions(workdir, "flaky") == 3

    failed = step["history"]
    assert [h["attempt"] for h in failed] == [1, 2]
    assert [h["outcome"] for h in failed] == ["failed", "failed"]
    assert [h["error"]["message"] for h in failed] == ["flaky failure number 1",
                                                       "flaky failure number 2"]
    declared = [flows.RETRY_BACKOFF.base_delay(n) for n in (1, 2)]
    assert declared == [0.25, 0.5]
    gaps = _gaps(step)
    for gap, floor in zip(gaps, declared, strict=True):
        assert gap >= floor - CLOCK, f"retried after {gap:.3f}s, declared {floor}s ({gaps})"
        assert gap < floor + 2.0, f"retry came {gap:.3f}s late, declared {floor}s ({gaps})"


def test_jitter_never_shortens_the_declared_delay(engine: wp.Engine, workdir: str):
    run_id = engine.start(flows.jittery_flow, {"workdir": workdir, "failures": 2})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == "ok on attempt 3"
    step = step_of(engine.show(run_id), "jittery")
    assert step["attempts"] == 3
    for n, gap in enumerate(_gaps(step), start=1):
        floor = flows.JITTER_BACKOFF.base_delay(n)
        assert gap >= floor - CLOCK, f"attempt {n + 1} after {gap:.3f}s < declared {floor}s"


def test_backoff_is_capped_at_max(engine: wp.Engine, workdir: str):
    # initial 0.1, factor 20: uncapped the third delay would be 40s; max is 0.2s.
    run_id = engine.start(flows.capped_flow, {"workdir": workdir, "failures": 3})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == "ok on attempt 4"
    step = step_of(engine.show(run_id), "capped")
    assert step["attempts"] == 4
    gaps = _gaps(step)
    assert len(gaps) == 3
    assert gaps[0] >= 0.1 - CLOCK
    assert all(g >= 0.2 - CLOCK for g in gaps[1:]), gaps
    assert all(g < 3.0 for g in gaps), gaps


def test_fatal_fails_at_once_without_retries(engine: wp.Engine, workdir: str):
    run_id = engine.start(flows.fatal_flow, {"workdir": workdir})
    with engine.serving() as worker, pytest.raises(wp.RunFailed) as info:
        result_of(engine, worker, run_id)
    assert info.value.run_id == run_id
    assert "card declined" in str(info.value)
    assert flows.executions(workdir, "declines") == 1

    view = engine.show(run_id)
    assert view["status"] == "failed"
    assert view["error"]["step"] == "declines"
    assert view["error"]["type"] == "Fatal"
    step = step_of(view, "declines")
    assert step["status"] == "failed"
    assert step["attempts"] == 1
    assert step["max_attempts"] == 4  # retries were declared, Fatal skipped them
    assert step["error"]["type"] == "Fatal"
    assert [h["attempt"] for h in step["history"]] == [1]


def test_exhausted_retries_fail_the_run_and_keep_the_traceback(engine: wp.Engine,
                                                               workdir: str):
    run_id = engine.start(flows.exhausted_flow, {"workdir": workdir})
    with engine.serving() as worker, pytest.raises(wp.RunFailed) as info:
        result_of(engine, worker, run_id)
    assert "always_fails" in str(info.value)
    assert "boom 2" in str(info.value)

    view = engine.show(run_id)
    assert view["status"] == "failed"
    assert view["output"] is None
    assert view["error"] == {"step": "always_fails", "type": "ValueError", "message": "boom 2"}

    bad = step_of(view, "always_fails")
    assert bad["status"] == "failed"
    assert bad["attempts"] == 2 == bad["max_attempts"]
    assert flows.executions(workdir, "always_fails") == 2
    assert bad["error"]["type"] == "ValueError"
    assert bad["error"]["message"] == "boom 2"
    assert "Traceback (most recent call last)" in bad["error"]["traceback"]
    assert 'raise ValueError(f"boom {n}")' in bad["error"]["traceback"]
    assert bad["finished_at"] is not None

    history = bad["history"]
    assert [h["attempt"] for h in history] == [1, 2]
    assert [h["outcome"] for h in history] == ["failed", "failed"]
    assert [h["error"]["message"] for h in history] == ["boom 1", "boom 2"]
    for h in history:
        assert "ValueError: boom" in h["error"]["traceback"]
        assert ts(h["started_at"]) <= ts(h["finished_at"])

    # What needed the failed step never ran; the independent branch still finished.
    blocked = step_of(view, "after_failure")
    assert blocked["status"] == "upstream_failed"
    assert blocked["attempts"] == 0
    assert step_of(view, "slow_ok")["status"] == "succeeded"
    good = step_of(view, "shout")
    assert good["status"] == "succeeded"
    assert good["output"] == "SLOW DONE"
    assert flows.executions(workdir, "slow_ok") == 1
    # The run ended only once the independent branch was done.
    assert ts(view["finished_at"]) >= ts(good["finished_at"])
