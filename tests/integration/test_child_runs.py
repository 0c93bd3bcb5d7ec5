"""Child runs across kinds (both stores): a machine state starts a flow or a machine and
waits for it holding no worker; the child's output moves the parent on, its failure is the
state's failure (routed like any other), cancelling the parent cancels the child, and
`show` links both ways."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import waypost as wp

from .helpers import result_of, step_of


@wp.task(timeout=5)
def double(n: int) -> int:
    return n * 2


@wp.flow()
def doubling(n: int) -> dict[str, int]:
    return {"doubled": double(n)}


@wp.task(timeout=5)
def refuse(data: dict[str, Any]) -> None:
    raise wp.Fatal("the child says no")


class Refusing(wp.Machine):
    initial = "refusing"
    refusing = wp.State(refuse, done="done")
    done = wp.Final()


class Waits(wp.Machine):
    initial = "waiting"
    waiting = wp.State(on={"go": "done"})
    done = wp.Final()


class Parent(wp.Machine):
    initial = "computing"
    computing = wp.State(child=doubling, done="asking", errors={"ChildFailed": "failed"})
    asking = wp.State(child=Refusing, done="done", errors={"ChildFailed": "refused"})
    done = wp.Final()
    refused = wp.Final()
    failed = wp.Final(failed=True)


def test_a_machine_runs_a_child_flow_then_routes_a_child_machines_failure(
        engine: wp.Engine) -> None:
    run_id = engine.start(Parent, {"n": 21})
    with engine.serving() as worker:
        output = result_of(engine, worker, run_id)
    assert output["doubled"] == 42 and output["last_error"]["type"] == "ChildFailed"
    assert "the child says no" in output["last_error"]["message"]
    view = engine.show(run_id)
    assert [t["to"] for t in view["transitions"]] == ["computing", "asking", "refused"]
    flow_child, machine_child = view["children"]
    assert (flow_child["flow"], flow_child["status"], flow_child["step"]) == (
        doubling.name, "succeeded", "computing#1")
    assert (machine_child["status"], machine_child["step"]) == ("failed", "asking#2")
    child = engine.show(flow_child["id"])
    assert child["parent"] == {"run": run_id, "step": "computing#1"}
    assert child["input"] == {"n": 21}
    assert step_of(view, "computing#1")["output"] == {"doubled": 42}


class Holding(wp.Machine):
    initial = "holding"
    holding = wp.State(child=Waits, done="done")
    done = wp.Final()


def test_cancelling_a_parent_cancels_its_child(engine: wp.Engine) -> None:
    run_id = engine.start(Holding, {})
    [child] = engine.show(run_id)["children"]
    assert child["status"] in ("pending", "running")
    assert step_of(engine.show(run_id), "holding#1")["status"] == "waiting"
    engine.cancel(run_id)
    assert engine.status(child["id"]) == "cancelled"
    assert "parent run" in engine.show(child["id"])["error"]["message"]


def test_a_child_that_finishes_moves_its_parent_in_the_same_transaction(
        engine: wp.Engine) -> None:
    run_id = engine.start(Holding, {})
    [child] = engine.show(run_id)["children"]
    assert engine.send(child["id"], "go")["status"] == "consumed"
    assert engine.result(run_id, timeout=5) == {}
    assert engine.status(child["id"]) == "succeeded"


def test_a_failed_child_fails_an_unrouted_parent_state(engine: wp.Engine) -> None:
    class Unrouted(wp.Machine):
        initial = "asking"
        asking = wp.State(child=Refusing, done="done")
        done = wp.Final()

    run_id = engine.start(Unrouted, {})
    with engine.serving() as worker, pytest.raises(wp.RunFailed, match="the child says no"):
        result_of(engine, worker, run_id)
    [child] = engine.show(run_id)["children"]
    assert step_of(engine.show(run_id), "asking#1")["error"]["child"] == child["id"]
    # the dead letter to replay is the child's, where the failing work is
    assert [d["step"] for d in engine.dead_letters(run_id=child["id"])] == ["refusing#1"]
    assert engine.dead_letters(run_id=run_id) == []


@wp.flow()
def with_children(n: int) -> dict[str, Any]:
    first = wp.child(doubling, {"n": n})
    approval = wp.child(Waits, {"asked": first})
    return {"first": first, "approval": approval}


def test_a_flow_starts_a_child_flow_and_a_child_machine(engine: wp.Engine) -> None:
    run_id = engine.start(with_children, {"n": 4})
    with engine.serving() as worker:
        deadline = time.monotonic() + 20
        while len(engine.show(run_id)["children"]) < 2:
            assert time.monotonic() < deadline, "the second child never started"
            time.sleep(0.05)
        flow_child, machine_child = engine.show(run_id)["children"]
        assert flow_child["status"] == "succeeded"
        assert engine.show(machine_child["id"])["input"] == {"asked": {"doubled": 8}}
        engine.send(machine_child["id"], "go", {"ok": True})
        assert result_of(engine, worker, run_id) == {
            "first": {"doubled": 8}, "approval": {"asked": {"doubled": 8}, "ok": True}}
    view = engine.show(run_id)
    assert [(s["name"], s["kind"], s["status"]) for s in view["steps"]] == [
        ("doubling", "child", "succeeded"), ("Waits", "child", "succeeded")]


@wp.flow()
def failing_child() -> Any:
    return wp.child(Refusing)


def test_a_childs_failure_is_its_steps_failure_in_a_flow(engine: wp.Engine) -> None:
    run_id = engine.start(failing_child, {})
    with engine.serving() as worker, pytest.raises(wp.RunFailed, match="the child says no"):
        result_of(engine, worker, run_id)
    assert step_of(engine.show(run_id), "Refusing")["status"] == "failed"


def test_wp_child_outside_a_flow_body_is_refused() -> None:
    with pytest.raises(wp.DefinitionError, match="step of a flow"):
        wp.child(doubling, {"n": 1})


@wp.task(timeout=5)
def needs_file(path: str) -> str:
    if not Path(path).exists():
        raise wp.Fatal(f"{path} is missing")
    return "found"


@wp.flow()
def looking(path: str) -> str:
    return needs_file(path)


class Looks(wp.Machine):
    initial = "looking"
    looking = wp.State(child=looking, done="done")
    done = wp.Final()


@wp.flow()
def looks_via_flow(path: str) -> Any:
    return wp.child(looking, {"path": path})


@pytest.mark.parametrize("parent", [Looks, looks_via_flow], ids=["machine", "flow"])
def test_resuming_a_parent_resumes_its_failed_child(engine: wp.Engine, tmp_path: Path,
                                                    parent: Any) -> None:
    path = tmp_path / "needed"
    run_id = engine.start(parent, {"path": str(path)})
    with engine.serving() as worker:
        with pytest.raises(wp.RunFailed, match="is missing"):
            result_of(engine, worker, run_id)
        [child] = engine.show(run_id)["children"]
        assert child["status"] == "failed"
        path.write_text("")
        engine.resume(run_id)
        output = result_of(engine, worker, run_id)
    expected = "found" if parent is looks_via_flow else {"path": str(path), "looking": "found"}
    assert output == expected
    assert engine.status(child["id"]) == "succeeded"
    assert len(engine.show(run_id)["children"]) == 1, "the same child, resumed"
