"""The DAG driver's decisions, and the runtime's retry rules, without a database."""

from __future__ import annotations

import json
from typing import Any

import pytest

import waypost as wp
from waypost import codec
from waypost.dag.driver import DagDriver
from waypost.runtime.core import retries
from waypost.runtime.seam import (
    EndStep,
    FailRun,
    FanOut,
    FinishRun,
    ItemsEnded,
    MakeReady,
    Release,
    Settled,
    StepsFreed,
    StepSucceeded,
    decide,
    encode_call,
)

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
    return pipeline.compile()[2]


class Facts:
    """What the runtime would read from the store for a run, held in memory."""

    def __init__(self, params: dict[str, Any], outputs: dict[str, Any] | None = None,
                 items: list[tuple[str, str | None, str | None]] | None = None,
                 failure: tuple[str, str | None] | None = None) -> None:
        self.run_id = "r1"
        self.params = params
        self._outputs = {k: codec.dumps(v) for k, v in (outputs or {}).items()}
        self._items = items or []
        self._failure = failure

    def now(self) -> float:
        return 1000.0

    def outputs(self, steps: Any) -> dict[str, str | None]:
        return {s: self._outputs[s] for s in steps if s in self._outputs}

    def items(self, node: str) -> list[tuple[str, str | None, str | None]]:
        return self._items

    def first_failure(self) -> tuple[str, str | None] | None:
        return self._failure


def freed(driver: DagDriver, facts: Facts, step: str) -> Any:
    (decision,) = driver.decide(facts, StepsFreed([step]))
    return decision


def test_new_run_steps_wait_on_their_dependencies(driver: DagDriver):
    steps = {s.name: s for s in driver.steps({"n": 3, "scale": 2})}
    assert list(steps) == ["fetch", "each", "gather_all"]
    assert {n: (s.status, s.waiting_on) for n, s in steps.items()} == {
        "fetch": ("ready", 0), "each": ("pending", 1), "gather_all": ("pending", 2)}
    assert json.loads(steps["fetch"].input or "") == {"args": [3], "kwargs": {}}
    assert {n: s.kind for n, s in steps.items()} == {"fetch": "task", "each": "map",
                                                      "gather_all": "task"}
    assert (steps["fetch"].max_attempts, steps["fetch"].timeout) == (4, 5)
    assert (steps["each"].max_attempts, steps["each"].timeout) == (2, None)
    assert steps["gather_all"].max_attempts == 1


def test_a_succeeded_step_releases_its_successors(driver: DagDriver):
    assert driver.decide(Facts({}), StepSucceeded("fetch", "fetch", "task")) == [
        Release(["each", "gather_all"])]
    assert driver.decide(Facts({}), StepSucceeded("gather_all", "gather_all", "task")) == []


def test_a_freed_task_renders_its_input(driver: DagDriver):
    facts = Facts({"n": 3, "scale": 2}, {"each": [1, 2], "fetch": {"label": "x"}})
    action = freed(driver, facts, "gather_all")
    assert isinstance(action, MakeReady)
    assert json.loads(action.input) == {"args": [[1, 2], "x"], "kwargs": {}}
    assert action.checksum == codec.checksum(action.input)
    again = freed(driver, facts, "gather_all")
    assert (again.input, again.checksum) == (action.input, action.checksum)


def test_a_freed_map_fans_out_one_item_per_element(driver: DagDriver):
    facts = Facts({"n": 3, "scale": 5}, {"fetch": {"items": [7, 8, 9], "label": "L"}})
    action = freed(driver, facts, "each")
    assert isinstance(action, FanOut)
    children = action.items
    assert [c.name for c in children] == ["each[0]", "each[1]", "each[2]"]
    assert [c.map_index for c in children] == [0, 1, 2]
    assert {(c.kind, c.status, c.node, c.waiting_on, c.max_attempts) for c in children} == {
        ("item", "ready", "each", 0, 2)}
    assert [json.loads(c.input or "") for c in children] == [
        {"args": [x, 5], "kwargs": {"label": "L"}} for x in (7, 8, 9)]
    assert all(c.input_checksum == codec.checksum(c.input or "") for c in children)


def test_a_map_over_nothing_fans_out_nothing(driver: DagDriver):
    facts = Facts({"scale": 1}, {"fetch": {"items": [], "label": "L"}})
    assert freed(driver, facts, "each") == FanOut("each", [])


@pytest.mark.parametrize("items", [{"a": 1}, "abc", 3, None])
def test_a_map_over_a_non_list_fails_the_step(driver: DagDriver, items: object):
    action = freed(driver, Facts({"scale": 1}, {"fetch": {"items": items, "label": "L"}}),
                   "each")
    assert isinstance(action, EndStep) and not action.succeeded
    assert action.error is not None and action.error["type"] == "InputError"
    assert "map needs a list" in action.error["message"]


def test_a_missing_key_fails_the_step_naming_it(driver: DagDriver):
    action = freed(driver, Facts({"n": 1}, {"each": [1], "fetch": {"items": []}}), "gather_all")
    assert isinstance(action, EndStep) and action.error is not None
    assert action.error["type"] == "InputError"
    assert "label" in action.error["message"]
    broken_map = freed(driver, Facts({"scale": 1}, {"fetch": {"label": "L"}}), "each")
    assert isinstance(broken_map, EndStep) and broken_map.error is not None
    assert "items" in broken_map.error["message"]


def test_an_output_that_cannot_be_decoded_fails_the_step_not_the_caller(driver: DagDriver):
    facts = Facts({"n": 1})
    facts._outputs = {"fetch": "{not json"}
    action = freed(driver, facts, "each")
    assert isinstance(action, EndStep) and action.error is not None
    assert "fetch" in action.error["message"]


def test_gather_in_item_order(driver: DagDriver):
    items = [("succeeded", "1", None), ("succeeded", '{"a":2}', None),
             ("succeeded", "null", None)]
    assert driver.decide(Facts({}, items=items), ItemsEnded("each")) == [
        EndStep("each", True, '[1,{"a":2},null]')]
    assert driver.decide(Facts({}, items=[]), ItemsEnded("each")) == [EndStep("each", True, "[]")]


def test_gather_with_failed_items_as_the_store_returns_them(driver: DagDriver):
    """Items come as the store returns them: (status, output JSON, error JSON text), the
    error encoded just like the output is."""
    error = codec.dumps({"type": "ValueError", "message": "bad item", "traceback": "..."})
    other = codec.dumps({"type": "KeyError", "message": "k", "traceback": None})
    items = [("succeeded", "1", None), ("failed", None, error), ("failed", None, other)]
    (result,) = driver.decide(Facts({}, items=items), ItemsEnded("each"))
    assert isinstance(result, EndStep) and result.error is not None
    assert result.error["type"] == "MapItemFailed"
    assert "2 of 3 items of each failed" in result.error["message"]
    assert "ValueError: bad item" in result.error["message"]


def test_a_settled_run_finishes_with_the_flow_result(driver: DagDriver):
    facts = Facts({"n": 4}, {"gather_all": {"values": [1]}})
    assert driver.decide(facts, Settled()) == [
        FinishRun(codec.dumps({"all": {"values": [1]}, "n": 4}))]


def test_a_settled_run_with_a_failure_fails_with_it(driver: DagDriver):
    error = codec.dumps({"type": "ValueError", "message": "no", "traceback": "..."})
    facts = Facts({"n": 4}, failure=("fetch", error))
    assert driver.decide(facts, Settled()) == [
        FailRun({"step": "fetch", "type": "ValueError", "message": "no"})]


@wp.task()
def make() -> dict:
    return {}


@wp.flow(name="driver-test-output")
def picks_a_key() -> str:
    return make()["id"]


def test_an_output_missing_a_key_fails_the_run_naming_the_step_and_the_key():
    """Defect 2: rendering a flow's output used to raise inside advance (worker dies)."""
    driver = picks_a_key.compile()[2]
    (decision,) = driver.decide(Facts({}, {"make": {}}), Settled())
    assert isinstance(decision, FailRun)
    assert decision.error["type"] == "OutputError"
    assert "make" in decision.error["message"] and "'id'" in decision.error["message"]


def test_a_driver_that_raises_fails_the_run_instead():
    class Raising(DagDriver):
        def decide(self, facts: Any, event: Any) -> Any:
            raise KeyError("boom")

    broken = Raising(pipeline.graph)
    (decision,) = decide(broken, Facts({}), StepSucceeded("fetch", "fetch", "task"))
    assert isinstance(decision, FailRun)
    assert decision.error["type"] == "DriverError" and decision.error["step"] == "fetch"
    assert "boom" in decision.error["message"]


def _policy(driver: DagDriver, node: str) -> Any:
    return driver.policy(node, "task")


def test_retry_while_attempts_remain_then_dead(driver: DagDriver):
    # fetch: 4 attempts, backoff 0.5 * 2^k capped at 3, no jitter.
    fetch = _policy(driver, "fetch")
    assert [retries.retry_delay(fetch, a, 4, fatal=False) for a in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert retries.retry_delay(fetch, 4, 4, fatal=False) is None
    assert retries.retry_delay(fetch, 5, 4, fatal=False) is None


def test_fatal_is_dead_at_once(driver: DagDriver):
    assert retries.retry_delay(_policy(driver, "fetch"), 1, 4, fatal=True) is None


def test_no_retries_is_dead_after_one_attempt(driver: DagDriver):
    assert retries.retry_delay(_policy(driver, "gather_all"), 1, 1, fatal=False) is None


def test_max_attempts_comes_from_the_step_not_the_node(driver: DagDriver):
    """A resumed step gets a larger budget than its node declared."""
    assert retries.retry_delay(_policy(driver, "gather_all"), 1, 3, fatal=False) is not None


def test_retry_delay_of_items_uses_the_node_backoff_with_jitter(driver: DagDriver):
    each = driver.policy("each", "item")
    assert retries.retry_delay(each, 1, 2, fatal=False, rand=0.0) == 1.0
    assert retries.retry_delay(each, 1, 2, fatal=False, rand=0.5) == 1.125
    for _ in range(50):
        delay = retries.retry_delay(each, 1, 2, fatal=False)
        assert delay is not None and 1.0 <= delay <= 1.25


def test_encode_call_is_canonical():
    text, checksum = encode_call([{"b": 1, "a": 2}], {"z": 1, "y": [1.5]})
    assert text == '{"args":[{"a":2,"b":1}],"kwargs":{"y":[1.5],"z":1}}'
    assert checksum.startswith("sha256:")
    assert encode_call([{"a": 2, "b": 1}], {"y": [1.5], "z": 1}) == (text, checksum)
