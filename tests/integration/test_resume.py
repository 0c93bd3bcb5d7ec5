"""Resume on both stores: deploy a fix, resume a failed run, keep what already succeeded."""

from __future__ import annotations

import pytest

import waypost as wp
from tests.flows import behaviour as flows

from .helpers import result_of, step_of


def _fail_first(engine: wp.Engine, flow: wp.Flow, params: dict) -> str:
    run_id = engine.start(flow, params)
    with engine.serving() as worker, pytest.raises(wp.RunFailed):
        result_of(engine, worker, run_id)
    return run_id


def test_resume_after_a_fix_reruns_only_what_failed(engine: wp.Engine, workdir: str):
    run_id = _fail_first(engine, flows.fixable, {"workdir": workdir})
    view = engine.show(run_id)
    assert view["status"] == "failed"
    assert view["error"]["step"] == "gated"
    statuses = {s["name"]: s["status"] for s in view["steps"]}
    assert statuses == {"fetch": "succeeded", "gated": "failed", "finish": "upstream_failed",
                        "side": "succeeded"}
    before = {s["name"]: s for s in view["steps"]}

    flows.apply_fix(workdir)
    assert engine.resume(run_id) == 2  # gated and finish
    assert engine.status(run_id) == "running"
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == {"result": 42, "side": "side done"}

    # Succeeded steps were not executed again; the failed one ran once more.
    assert flows.executions(workdir, "fetch") == 1
    assert flows.executions(workdir, "side") == 1
    assert flows.executions(workdir, "gated") == 2
    assert flows.executions(workdir, "finish") == 1

    after = engine.show(run_id)
    assert after["status"] == "succeeded"
    assert after["error"] is None
    assert all(s["status"] == "succeeded" for s in after["steps"])
    for name in ("fetch", "side"):
        kept, was = step_of(after, name), before[name]
        assert kept["attempts"] == 1
        assert (kept["started_at"], kept["finished_at"], kept["output"]) == (
            was["started_at"], was["finished_at"], was["output"])
    gated = step_of(after, "gated")
    assert gated["attempts"] == 2
    assert gated["output"] == 21
    # The failed attempt stays in the history; the same key is used on every attempt.
    assert [h["outcome"] for h in gated["history"]] == ["failed"]
    assert gated["idempotency_key"] == before["gated"]["idempotency_key"]


def test_resume_without_the_fix_fails_again(engine: wp.Engine, workdir: str):
    run_id = _fail_first(engine, flows.fixable, {"workdir": workdir})
    engine.resume(run_id)
    with engine.serving() as worker, pytest.raises(wp.RunFailed) as info:
        result_of(engine, worker, run_id)
    assert "the fix is not deployed yet" in str(info.value)
    assert flows.executions(workdir, "gated") == 2
    assert flows.executions(workdir, "fetch") == 1
    # ...and a second resume after the fix still works.
    flows.apply_fix(workdir)
    engine.resume(run_id)
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id)["result"] == 42
    assert flows.executions(workdir, "gated") == 3
    assert flows.executions(workdir, "fetch") == 1


def test_resume_a_failed_map_reruns_only_the_failed_item(engine: wp.Engine, workdir: str):
    params = {"workdir": workdir, "n": 6, "bad": 4}
    run_id = _fail_first(engine, flows.fragile_fanout, params)
    view = engine.show(run_id)
    assert step_of(view, "fragile[4]")["status"] == "failed"
    assert step_of(view, "total")["status"] == "upstream_failed"

    flows.apply_fix(workdir)
    assert engine.resume(run_id) == 3  # the item, its map node, the fan-in
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == sum(x * 10 for x in range(6))
    assert [flows.executions(workdir, f"fragile-{x}") for x in range(6)] == [1, 1, 1, 1, 2, 1]
    assert engine.show(run_id)["status"] == "succeeded"


@pytest.mark.parametrize("outcome", ["succeeded", "unknown"])
def test_only_a_failed_run_can_resume(engine: wp.Engine, outcome: str):
    if outcome == "unknown":
        with pytest.raises(wp.UnknownTargetError):
            engine.resume("0000deadbeef")
        return
    run_id = engine.start(flows.adder, {"a": 1})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == 3
    with pytest.raises(wp.InputError, match="only a failed run can resume"):
        engine.resume(run_id)
    assert engine.status(run_id) == "succeeded"
