"""The DAG driver's decisions, without a database."""

from __future__ import annotations

import json
from typing import Any

import pytest

import waypost as wp
from waypost import codec
from waypost.dag.driver import Broken, DagDriver, Dead, Expand, Ready, Retry, encode_input

BACKOFF = wp.Backoff(initial=0.5, factor=2.0, max=3.0, jitter=False)


@wp.task(retries=3, backoff=BACKOFF, timeout=5)
def fetch(n: int) -> dict:
    return {"items": list(range(n)), "label": "x"}


@wp.task(retries=1, backoff=wp.Backoff(initial=1.0, factor=2.0, max=10.0, jitter=True))
def each(item: int, scale: int, *, label: str) -> int:
    return item * scale


@wp.task()
def gather_all(values: list, label: str) -> dict:
    return {"values": values, "label": label}


@wp.flow(name="driver-test")
def pipeline(n: int, scale: int = 2) -> dict:
    data = fetch(n)
    parts = each.map(data["items"], scale, label=data["label"])
    return {"all": gather_all(parts, data["label"]), "n": n}


@pytest.fixture
def driver() -> DagDriver:
    return DagDriver(pipeline.graph)


def test_new_run_steps_wait_on_their_dependencies(driver: DagDriver):
    steps = {s.name: s for s in driver.steps()}
    assert list(steps) == ["fetch", "each", "gather_all"]
    assert {n: (s.status, s.waiting_on) for n, s in steps.items()} == {
        "fetch": ("pending", 0), "each": ("pending", 1), "gather_all": ("pending", 2)}
    assert {n: s.kind for n, s in steps.items()} == {"fetch": "task", "each": "map",
                                                      "gather_all": "task"}
    assert (steps["fetch"].max_attempts, steps["fetch"].timeout) == (4, 5)
    assert (steps["each"].max_attempts, steps["each"].timeout) == (2, None)
    assert steps["gather_all"].max_attempts == 1


def test_activate_a_task_renders_its_input(driver: DagDriver):
    action = driver.activate("fetch", {}, {"n": 3, "scale": 2})
    assert isinstance(action, Ready)
    assert json.loads(action.input) == {"args": [3], "kwargs": {}}
    assert action.checksum == codec.checksum(action.input)
    # The same input always gives the same text and checksum.
    again = driver.activate("fetch", {}, {"n": 3, "scale": 2})
    assert (again.input, again.checksum) == (action.input, action.checksum)
    other = driver.activate("fetch", {}, {"n": 4, "scale": 2})
    assert other.checksum != action.checksum


def test_activate_a_map_expands_one_item_per_element(driver: DagDriver):
    outputs = {"fetch": {"items": [7, 8, 9], "label": "L"}}
    action = driver.activate("each", outputs, {"n": 3, "scale": 5})
    assert isinstance(action, Expand)
    children = action.children
    assert [c.name for c in children] == ["each[0]", "each[1]", "each[2]"]
    assert [c.map_index for c in children] == [0, 1, 2]
    assert {(c.kind, c.status, c.node, c.waiting_on, c.max_attempts) for c in children} == {
        ("item", "ready", "each", 0, 2)}
    assert [json.loads(c.input) for c in children] == [
        {"args": [x, 5], "kwargs": {"label": "L"}} for x in (7, 8, 9)]
    assert all(c.input_checksum == codec.checksum(c.input) for c in children)


def test_activate_a_map_over_nothing_expands_nothing(driver: DagDriver):
    action = driver.activate("each", {"fetch": {"items": [], "label": "L"}}, {"scale": 1})
    assert action == Expand([])


@pytest.mark.parametrize("items", [{"a": 1}, "abc", 3, None])
def test_activate_a_map_over_a_non_list_is_broken(driver: DagDriver, items: object):
    action = driver.activate("each", {"fetch": {"items": items, "label": "L"}}, {"scale": 1})
    assert isinstance(action, Broken)
    assert action.error["type"] == "InputError"
    assert "map needs a list" in action.error["message"]


def test_activate_with_a_missing_key_is_broken(driver: DagDriver):
    action = driver.activate("gather_all", {"each": [1], "fetch": {"items": []}}, {"n": 1})
    assert isinstance(action, Broken)
    assert action.error["type"] == "InputError"
    assert "label" in action.error["message"]
    broken_map = driver.activate("each", {"fetch": {"label": "L"}}, {"scale": 1})
    assert isinstance(broken_map, Broken)
    assert "items" in broken_map.error["message"]


def _opts(driver: DagDriver, node: str) -> dict[str, Any]:
    return driver.options(node, "task")


def test_retry_while_attempts_remain_then_dead(driver: DagDriver):
    # fetch: 4 attempts, backoff 0.5 * 2^k capped at 3, no jitter.
    decisions = [driver.on_failure(_opts(driver, "fetch"), attempt, 4, fatal=False)
                 for attempt in (1, 2, 3)]
    assert decisions == [Retry(0.5), Retry(1.0), Retry(2.0)]
    assert driver.on_failure(_opts(driver, "fetch"), 4, 4, fatal=False) == Dead()
    assert driver.on_failure(_opts(driver, "fetch"), 5, 4, fatal=False) == Dead()


def test_fatal_is_dead_at_once(driver: DagDriver):
    assert driver.on_failure(_opts(driver, "fetch"), 1, 4, fatal=True) == Dead()


def test_no_retries_is_dead_after_one_attempt(driver: DagDriver):
    assert driver.on_failure(_opts(driver, "gather_all"), 1, 1, fatal=False) == Dead()


def test_max_attempts_comes_from_the_step_not_the_node(driver: DagDriver):
    """A resumed step gets a larger budget than its node declared."""
    assert isinstance(driver.on_failure(_opts(driver, "gather_all"), 1, 3, fatal=False), Retry)


def test_retry_delay_of_items_uses_the_node_backoff_with_jitter(driver: DagDriver):
    assert driver.on_failure(_opts(driver, "each"), 1, 2, fatal=False, rand=0.0) == Retry(1.0)
    assert driver.on_failure(_opts(driver, "each"), 1, 2, fatal=False, rand=0.5) == Retry(1.125)
    for _ in range(50):
        decision = driver.on_failure(_opts(driver, "each"), 1, 2, fatal=False)
        assert isinstance(decision, Retry)
        assert 1.0 <= decision.delay <= 1.25


def test_gather_in_item_order(driver: DagDriver):
    children = [("succeeded", "1", None), ("succeeded", '{"a":2}', None),
                ("succeeded", "null", None)]
    assert driver.gather("each", children) == [1, {"a": 2}, None]
    assert driver.gather("each", []) == []


def test_gather_with_failed_items_as_the_store_returns_them(driver: DagDriver):
    """Items come as the store returns them: (status, output JSON, error JSON text), the
    error encoded just like the output is."""
    error = codec.dumps({"type": "ValueError", "message": "bad item", "traceback": "..."})
    other = codec.dumps({"type": "KeyError", "message": "k", "traceback": None})
    result = driver.gather("each", [("succeeded", "1", None), ("failed", None, error),
                                    ("failed", None, other)])
    assert isinstance(result, Broken)
    assert result.error["type"] == "MapItemFailed"
    assert "2 of 3 items of each failed" in result.error["message"]
    assert "ValueError: bad item" in result.error["message"]


def test_output_renders_the_flow_result(driver: DagDriver):
    assert driver.output_deps() == ["gather_all"]
    assert driver.output({"gather_all": {"values": [1]}}, {"n": 4}) == {
        "all": {"values": [1]}, "n": 4}


def test_encode_input_is_canonical():
    text, checksum = encode_input([{"b": 1, "a": 2}], {"z": 1, "y": [1.5]})
    assert text == '{"args":[{"a":2,"b":1}],"kwargs":{"y":[1.5],"z":1}}'
    assert checksum.startswith("sha256:")
    assert encode_input([{"a": 2, "b": 1}], {"y": [1.5], "z": 1}) == (text, checksum)
