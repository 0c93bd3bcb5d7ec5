"""Contract: a run's steps and the DAG's bookkeeping (store/sql/steps.py)."""

from __future__ import annotations

import time

import pytest

from waypost.store import Store

from .helpers import claim, new_run, statuses, step, step_id, steps, store

__all__ = ["store"]


def test_release_frees_pending_steps_at_zero_in_the_order_named(store: Store) -> None:
    run_id = new_run(store, step("a"), step("x", status="pending", waiting_on=2),
                     step("y", status="pending", waiting_on=1),
                     step("z", status="pending", waiting_on=1))
    store.transact(lambda tx: tx.block(run_id, ["z"]))
    assert store.transact(lambda tx: tx.release(run_id, ["y", "x", "z"])) == ["y"]
    assert store.transact(lambda tx: tx.release(run_id, ["x"])) == ["x"]
    assert steps(store, run_id)["z"]["waiting_on"] == 1, "fenced by pending"


def test_make_ready_gives_the_input_and_start_map_counts_its_items(store: Store) -> None:
    run_id = new_run(store, step("a", status="pending", waiting_on=1, input=None),
                     step("m", status="pending", waiting_on=1, kind="map"),
                     step("m[0]", node="m", kind="item", map_index=0),
                     step("m[1]", node="m", kind="item", map_index=1))
    store.transact(lambda tx: tx.make_ready(run_id, "a", '{"x": 2}', "c2"))
    store.transact(lambda tx: tx.start_map(run_id, "m", 2))
    rows = steps(store, run_id)
    assert (rows["a"]["status"], rows["a"]["input"], rows["a"]["input_checksum"]) == (
        "ready", '{"x": 2}', "c2")
    assert (rows["m"]["status"], rows["m"]["waiting_on"], rows["m"]["attempts"]) == (
        "running", 2, 1)
    assert store.transact(lambda tx: tx.item_done(run_id, "m")) == 1
    i0 = step_id(store, run_id, "m[0]")
    store.transact(lambda tx: tx.end_wait(i0, "ready", "succeeded", "7", None))
    assert store.transact(lambda tx: tx.item_done(run_id, "m", 1)) == 0
    assert store.read(lambda tx: tx.map_items(run_id, "m")) == [
        ("succeeded", "7", None), ("ready", None, None)]
    store.transact(lambda tx: tx.end_node(run_id, "m", "succeeded", "[7]", None))
    store.transact(lambda tx: tx.end_node(run_id, "m", "failed", None, "late"))
    rows = steps(store, run_id)
    assert (rows["m"]["status"], rows["m"]["output"]) == ("succeeded", "[7]"), "ended once"
    assert rows["m"]["finished_at"] is not None
    # an ended map matches no row: nothing changes, and it says so
    assert store.transact(lambda tx: tx.item_done(run_id, "m")) is None
    assert steps(store, run_id)["m"]["waiting_on"] == 0


def test_make_ready_start_map_make_waiting_and_end_node_need_a_pending_step(
        store: Store) -> None:
    run_id = new_run(store, step("r"), step("p", status="pending", waiting_on=1))
    (a,) = claim(store)
    store.transact(lambda tx: tx.end_node(run_id, "p", "failed", None, "x"))  # pending: ends
    store.transact(lambda tx: tx.make_ready(run_id, "r", '{"x": 9}', "c9"))
    store.transact(lambda tx: tx.start_map(run_id, "r", 5))
    assert store.transact(lambda tx: tx.make_waiting(run_id, "r", None)) is None
    store.transact(lambda tx: tx.make_ready(run_id, "p", '{"x": 9}', "c9"))
    store.transact(lambda tx: tx.start_map(run_id, "p", 5))
    assert store.transact(lambda tx: tx.make_waiting(run_id, "p", None)) is None
    rows = steps(store, run_id)
    assert (rows["r"]["status"], rows["r"]["input"], rows["r"]["waiting_on"]) == (
        "running", '{"x": 1}', 0), "a running step is not made ready, mapped or waiting"
    assert (rows["p"]["status"], rows["p"]["input"], rows["p"]["error"]) == (
        "failed", '{"x": 1}', "x"), "nor an ended one"
    store.transact(lambda tx: tx.end_node(run_id, "r", "succeeded", "1", None))
    assert steps(store, run_id)["r"]["status"] == "succeeded", "end_node: running"
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "2")) is None


def test_block_ends_only_pending_steps(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b", status="pending", waiting_on=1),
                     step("c", status="pending", waiting_on=1))
    assert store.transact(lambda tx: tx.block(run_id, ["a", "b", "c"])) == 2
    assert store.transact(lambda tx: tx.block(run_id, [])) == 0
    assert store.transact(lambda tx: tx.block(run_id, ["b"])) == 0, "blocked once"
    assert statuses(store, run_id) == {
        "a": "ready", "b": "upstream_failed", "c": "upstream_failed"}


def test_first_failure_skips_undo_steps(store: Store) -> None:
    run_id = new_run(store, step("u", kind="undo"), step("a"), step("b"))
    ids = {n: r["id"] for n, r in steps(store, run_id).items()}
    assert len(claim(store)) == 3
    assert store.read(lambda tx: tx.first_failure(run_id)) is None
    for name in ("u", "b", "a"):
        store.transact(lambda tx, n=name: tx.fail(ids[n], f"{n} broke"))
        time.sleep(0.01)  # SQLite's clock counts milliseconds
    assert store.read(lambda tx: tx.first_failure(run_id)) == ("b", "b broke")


def test_steps_of_and_attempts_of_a_run(store: Store) -> None:
    run_id = new_run(store, step("a", heartbeat=5.0), step("b"))
    other = new_run(store, step("a"))
    a, *_ = claim(store, limit=1)
    assert store.transact(lambda tx: tx.end_attempt(a.id, a.lease_token, "failed", "e", False))
    rows = store.read(lambda tx: tx.steps_of(run_id))
    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0]["heartbeat"] == 5.0 and rows[0]["suspicious"] is False
    assert [h["step_id"] for h in store.read(lambda tx: tx.attempts_of(run_id))] == [a.id]
    assert store.read(lambda tx: tx.attempts_of(other)) == []
    assert [(h["attempt"], h["outcome"], h["error"], h["worker"]) for h in store.read(
        lambda tx: tx.attempts_of_step(a.id))] == [(1, "failed", "e", "w1")]
    assert store.read(lambda tx: tx.attempts_of_step(rows[1]["id"])) == []


def test_reset_step_clears_the_end_fenced_by_the_status_it_was(store: Store) -> None:
    run_id = new_run(store, step("a"), step("b", status="pending", waiting_on=1))
    (a,) = claim(store)
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "1"))
    assert store.transact(lambda tx: tx.reset_step(a.id, "failed", "ready", 0, 5)) is False
    row = steps(store, run_id)["a"]
    assert (row["status"], row["output"], row["max_attempts"]) == ("succeeded", "1", 3)
    assert store.transact(lambda tx: tx.reset_step(a.id, "succeeded", "pending", 2, 5)) is True
    row = steps(store, run_id)["a"]
    assert (row["status"], row["output"], row["finished_at"], row["max_attempts"],
            row["waiting_on"]) == ("pending", None, None, 5, 2)
    assert store.transact(lambda tx: tx.reset_step(a.id, "succeeded", "ready", 0, 9)) \
        is False, "acts once"
    assert steps(store, run_id)["a"]["status"] == "pending"


@pytest.mark.parametrize("names", [[], ["a"]])
def test_outputs_of_named_steps(store: Store, names: list[str]) -> None:
    run_id = new_run(store)
    got = claim(store, limit=1)[0]
    assert store.transact(lambda tx: tx.succeed(got.id, got.lease_token, '"out"'))
    assert store.read(lambda tx: tx.outputs(run_id, names)) == (
        {"a": '"out"'} if names else {})


def test_insert_steps_adds_a_runs_steps_with_their_keys(store: Store) -> None:
    run_id = new_run(store, step("a"))
    store.transact(lambda tx: tx.insert_steps(
        run_id, [step("b", status="pending", waiting_on=1), step("c", max_attempts=5)],
        ["k-b", "k-c"]))
    assert [(r["name"], r["status"], r["waiting_on"], r["max_attempts"], r["idempotency_key"])
            for r in store.read(lambda tx: tx.steps_of(run_id))] == [
        ("a", "ready", 0, 3, f"{run_id}/a"), ("b", "pending", 1, 3, "k-b"),
        ("c", "ready", 0, 5, "k-c")]
