"""Fan-out (`task.map`) and fan-in on both stores."""

from __future__ import annotations

import re

import pytest

import waypost as wp
from tests.flows import behaviour as flows

from .helpers import result_of, step_of


def test_fan_out_of_a_thousand_and_fan_in(engine: wp.Engine):
    n = 1000
    run_id = engine.start(flows.squares, {"n": n})
    with engine.serving(concurrency=16) as worker:
        out = result_of(engine, worker, run_id, timeout=90)
    assert out == {"sum": sum(x * x for x in range(n)), "count": n}

    view = engine.show(run_id)
    assert view["status"] == "succeeded"
    items = [s for s in view["steps"] if s["kind"] == "item"]
    assert len(items) == n
    assert sorted(s["name"] for s in items) == sorted(f"square[{i}]" for i in range(n))
    by_name = {s["name"]: s for s in items}
    for i in (0, 1, 499, 999):
        item = by_name[f"square[{i}]"]
        assert item["status"] == "succeeded"
        assert item["attempts"] == 1
        assert item["input"] == {"args": [i], "kwargs": {}}
        assert item["output"] == i * i
    assert all(s["status"] == "succeeded" and s["attempts"] == 1 for s in items)
    assert len({s["idempotency_key"] for s in items}) == n

    mapped = step_of(view, "square")
    assert mapped["kind"] == "map"
    assert mapped["status"] == "succeeded"
    assert mapped["output"] == [x * x for x in range(n)]
    assert {s["name"] for s in view["steps"]} == {"numbers", "square", "total", "count",
                                                  *by_name}


@pytest.mark.slow
def test_fan_out_holds_ten_thousand_items(engine: wp.Engine):
    n = 10_000
    run_id = engine.start(flows.squares, {"n": n})
    with engine.serving(concurrency=32) as worker:
        out = result_of(engine, worker, run_id, timeout=120)
    assert out == {"sum": sum(x * x for x in range(n)), "count": n}
    view = engine.show(run_id)
    items = [s for s in view["steps"] if s["kind"] == "item"]
    assert len(items) == n and all(s["status"] == "succeeded" for s in items)


def test_map_over_an_empty_list(engine: wp.Engine):
    run_id = engine.start(flows.squares, {"n": 0})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == {"sum": 0, "count": 0}
    view = engine.show(run_id)
    assert not [s for s in view["steps"] if s["kind"] == "item"]
    mapped = step_of(view, "square")
    assert (mapped["status"], mapped["output"]) == ("succeeded", [])


def test_a_run_of_only_an_empty_map_finishes_without_a_worker(engine: wp.Engine):
    run_id = engine.start(flows.squares_of, {"xs": []})
    assert engine.status(run_id) == "succeeded"
    assert engine.result(run_id, timeout=1) == []


def test_map_over_a_flow_parameter(engine: wp.Engine):
    run_id = engine.start(flows.squares_of, {"xs": [3, 1, 2]})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == [9, 1, 4]
    names = [s["name"] for s in engine.show(run_id)["steps"] if s["kind"] == "item"]
    assert sorted(names) == ["square[0]", "square[1]", "square[2]"]


def test_one_failing_item_fails_the_run_and_the_others_succeed(engine: wp.Engine,
                                                              workdir: str):
    n, bad = 8, 5
    run_id = engine.start(flows.fragile_fanout, {"workdir": workdir, "n": n, "bad": bad})
    with engine.serving() as worker, pytest.raises(wp.RunFailed) as info:
        result_of(engine, worker, run_id)
    assert "item 5 is bad" in str(info.value)

    view = engine.show(run_id)
    assert view["status"] == "failed"
    statuses = {s["name"]: s["status"] for s in view["steps"]}
    assert statuses.pop(f"fragile[{bad}]") == "failed"
    assert statuses.pop("fragile") == "failed"
    assert statuses.pop("total") == "upstream_failed"
    assert statuses == {"numbers": "succeeded",
                        **{f"fragile[{i}]": "succeeded" for i in range(n) if i != bad}}
    assert step_of(view, f"fragile[{bad}]")["error"]["message"] == "item 5 is bad"
    node_error = step_of(view, "fragile")["error"]
    assert node_error["type"] == "MapItemFailed"
    assert re.search(r"\b1 of 8\b", node_error["message"]), node_error
    assert all(flows.executions(workdir, f"fragile-{i}") == 1 for i in range(n))


def test_items_retry_on_their_own(engine: wp.Engine, workdir: str):
    run_id = engine.start(flows.wobbly_fanout, {"workdir": workdir, "n": 6})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == sum(x + 1 for x in range(6))
    view = engine.show(run_id)
    attempts = {s["name"]: s["attempts"] for s in view["steps"] if s["kind"] == "item"}
    assert attempts == {f"wobbly[{i}]": 2 if i % 2 else 1 for i in range(6)}


def test_map_over_a_non_list_fails_the_run(engine: wp.Engine):
    run_id = engine.start(flows.map_over_dict, {})
    with engine.serving() as worker, pytest.raises(wp.RunFailed, match="map needs a list"):
        result_of(engine, worker, run_id)
    view = engine.show(run_id)
    mapped = step_of(view, "square")
    assert mapped["status"] == "failed"
    assert mapped["error"]["type"] == "InputError"
    assert step_of(view, "settings")["status"] == "succeeded"


def test_an_input_that_cannot_be_built_fails_the_run(engine: wp.Engine):
    ok = engine.start(flows.pick, {"n": 5})
    broken = engine.start(flows.pick, {"n": 2})
    with engine.serving() as worker:
        assert result_of(engine, worker, ok) == 9
        with pytest.raises(wp.RunFailed, match="cannot build input"):
            result_of(engine, worker, broken)
    step = step_of(engine.show(broken), "square")
    assert (step["status"], step["attempts"]) == ("failed", 0)


@pytest.mark.parametrize("n", [1, 3])
def test_small_fan_outs(engine: wp.Engine, n: int):
    run_id = engine.start(flows.squares, {"n": n})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == {"sum": sum(x * x for x in range(n)),
                                                     "count": n}
