"""A run's definition (a flow, a machine or a handler) is named `definition` everywhere,
and `flow`, its older name, is still accepted where callers already used it (both
stores): `Engine.start`, `Engine.run`, `Engine.runs`, the API's runs list."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import waypost as wp
from tests.flows.behaviour import Approval  # a machine: it waits and starts no task
from waypost.api import create_app
from waypost.api.auth import digest


@wp.task
def named_twice(x: int) -> int:
    return x + 1


@wp.flow(name="tests.names:plus_one")
def plus_one(x: int) -> int:
    return named_twice(x)


def test_start_takes_a_definition_by_either_name(engine: wp.Engine) -> None:
    by_position = engine.start(plus_one, {"x": 1})
    by_name = engine.start(definition=plus_one, input={"x": 2})
    by_old_name = engine.start(flow=plus_one, input={"x": 3})
    machine = engine.start(flow=Approval)  # a machine too, under the old name
    assert engine.start(flow=plus_one, input={"x": 3}, key="k") == engine.start(
        definition=plus_one, input={"x": 3}, key="k")
    with engine.serving():
        assert [engine.result(r, timeout=30) for r in (by_position, by_name, by_old_name)] == [
            2, 3, 4]
        assert engine.run(flow=plus_one, input={"x": 9}, timeout=30) == 10
        assert engine.run(definition=plus_one, input={"x": 10}, timeout=30) == 11
    assert engine.show(machine)["flow"] == Approval.name


def test_naming_the_definition_both_ways_or_not_at_all_is_refused(engine: wp.Engine) -> None:
    with pytest.raises(wp.InputError, match="not both"):
        engine.start(plus_one, {"x": 1}, flow=plus_one)
    with pytest.raises(wp.InputError, match="name the definition"):
        engine.start(input={"x": 1})
    with pytest.raises(wp.InputError, match="not both"):
        engine.run(definition=plus_one, flow=plus_one)
    with pytest.raises(wp.InputError, match="not both"):
        engine.runs(definition="plus_one", flow="plus_one")
    assert engine.runs() == []  # nothing was started


def test_runs_are_filtered_by_definition_under_either_name(engine: wp.Engine) -> None:
    flow_run = engine.start(plus_one, {"x": 1})
    machine_run = engine.start(Approval)
    for name in ("plus_one", plus_one.name):
        assert [r["id"] for r in engine.runs(definition=name)] == [flow_run]
        assert [r["id"] for r in engine.runs(flow=name)] == [flow_run]
        assert [r["id"] for r in engine.runs(None, name)] == [flow_run]  # by position
    assert [r["id"] for r in engine.runs_page(flow="Approval")[0]] == [machine_run]
    [row] = engine.runs(definition="Approval")
    assert (row["flow"], row["definition"], row["fingerprint"]) == (
        Approval.name, row["fingerprint"], engine.show(machine_run)["definition"])


def test_the_api_lists_runs_by_definition_or_flow(engine: wp.Engine) -> None:
    flow_run = engine.start(plus_one, {"x": 1})
    engine.start(Approval)
    app = create_app(engine, {digest("t"): "alice"})
    with TestClient(app, headers={"Authorization": "Bearer t"}) as client:
        for param in ("definition", "flow"):
            listed = client.get("/api/v1/runs", params={param: "plus_one"})
            assert [r["id"] for r in listed.json()["runs"]] == [flow_run], param
        both = client.get("/api/v1/runs", params={"definition": "x", "flow": "x"})
        assert both.status_code == 422
        assert "not both" in both.json()["error"]["message"]
