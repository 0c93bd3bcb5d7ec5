"""Contract: runs (store/sql/runs.py), on both stores."""

from __future__ import annotations

import time
import uuid

import pytest

from waypost import codec
from waypost.store import Store

from .helpers import claim, held_to_the_end, new_run, run_status, step, step_id, steps, store

__all__ = ["store"]


def test_lock_run_reads_the_run_and_holds_it_to_the_end_of_the_transaction(
        store: Store) -> None:
    run_id = new_run(store)
    assert store.transact(lambda tx: tx.lock_run("nope")) is None
    got = store.transact(lambda tx: tx.lock_run(run_id))
    assert got is not None and (got["id"], got["status"]) == (run_id, "pending")
    assert (got["state"], got["data"], got["transitions"]) == (None, None, 0)
    assert {k: v for k, v in got.items() if k not in ("state", "data", "transitions")} \
        == store.read(lambda tx: tx.get_run(run_id))
    store.transact(lambda tx: tx.transition(run_id, 1, None, "a", "start", None, None, "{}"))
    got = store.transact(lambda tx: tx.lock_run(run_id))
    assert got is not None and (got["state"], got["data"], got["transitions"]) == ("a", "{}", 1)
    assert (got["state"], got["data"], got["transitions"]) == \
        store.transact(lambda tx: tx.machine(run_id))
    held_to_the_end(store, lambda tx: tx.lock_run(run_id), lambda tx: tx.get_run(run_id))


def test_insert_run_is_fenced_by_its_id_and_key(store: Store) -> None:
    run_id = new_run(store, key="k1")
    assert store.transact(lambda tx: tx.insert_run(run_id, "f", "fp", None, "{}", "c", 0)) \
        is False
    assert store.transact(lambda tx: tx.insert_run("other", "f", "fp", "k1", "{}", "c", 0)) \
        is False
    assert store.read(lambda tx: tx.run_by_key("k1")) == (run_id, "mod:flow", "sum")
    assert store.read(lambda tx: tx.run_head(run_id)) == ("fp", '{"x": 1}', None, None)
    assert store.read(lambda tx: tx.run_head("nope")) is None
    assert store.read(lambda tx: tx.get_run("nope")) is None
    run = store.read(lambda tx: tx.get_run(run_id))
    assert run is not None and (run["status"], run["open_steps"]) == ("pending", 2)


def test_add_open_returns_the_new_count(store: Store) -> None:
    run_id = new_run(store)
    assert store.transact(lambda tx: tx.add_open(run_id, 3)) == 5
    assert store.transact(lambda tx: tx.add_open(run_id, -5)) == 0


def test_finish_run_never_overwrites_an_ended_run(store: Store) -> None:
    run_id = new_run(store)
    store.transact(lambda tx: tx.finish_run(run_id, "succeeded", "1", None))
    store.transact(lambda tx: tx.finish_run(run_id, "failed", None, "late"))
    run = store.read(lambda tx: tx.get_run(run_id))
    assert run is not None and (run["status"], run["output"], run["error"]) == (
        "succeeded", "1", None)
    assert run["started_at"] is not None and run["finished_at"] is not None


def test_mark_runs_running_only_moves_pending_runs(store: Store) -> None:
    a, b = new_run(store), new_run(store)
    store.transact(lambda tx: tx.end_run(b, "cancelled", "x"))
    store.transact(lambda tx: tx.mark_runs_running([a, b]))
    assert [store.read(lambda tx, r=r: tx.get_run(r))["status"] for r in (a, b)] == [
        "running", "cancelled"]
    store.transact(lambda tx: tx.end_run(a, "cancelled", "y"))
    store.transact(lambda tx: tx.mark_runs_running([a]))
    assert run_status(store, a) == "cancelled", "a run that ended meanwhile stays ended"


def test_end_run_acts_once(store: Store) -> None:
    run_id = new_run(store)
    assert store.transact(lambda tx: tx.end_run(run_id, "cancelled", "by op")) is True
    assert store.transact(lambda tx: tx.end_run(run_id, "failed", "again")) is False
    run = store.read(lambda tx: tx.get_run(run_id))
    assert (run["status"], run["error"], run["open_steps"]) == ("cancelled", "by op", 0)


def test_reopen_run_clears_the_end_and_the_deadline(store: Store) -> None:
    run_id = new_run(store)
    store.transact(lambda tx: tx.set_deadline(run_id, -1.0))
    store.transact(lambda tx: tx.end_run(run_id, "failed", "boom"))
    store.transact(lambda tx: tx.reopen_run(run_id, 1))
    run = store.read(lambda tx: tx.get_run(run_id))
    assert (run["status"], run["error"], run["finished_at"], run["open_steps"]) == (
        "running", None, None, 1)
    assert store.read(lambda tx: tx.overdue_runs(10)) == []


def test_overdue_runs_are_open_runs_past_their_deadline(store: Store) -> None:
    late, later, ended, none = (new_run(store) for _ in range(4))
    store.transact(lambda tx: tx.set_deadline(late, -20.0))
    store.transact(lambda tx: tx.set_deadline(later, -10.0))
    store.transact(lambda tx: tx.set_deadline(ended, -30.0))
    store.transact(lambda tx: tx.end_run(ended, "failed", "x"))
    store.transact(lambda tx: tx.set_deadline(none, 3600.0))
    assert store.read(lambda tx: tx.overdue_runs(10)) == [late, later]
    assert store.read(lambda tx: tx.overdue_runs(1)) == [late]


def test_cancel_steps_ends_what_is_unfinished_and_fences_running_attempts(
        store: Store) -> None:
    run_id = new_run(store, step("a"), step("b"), step("c", status="pending", waiting_on=1))
    held = {c.name: c for c in claim(store, limit=1)}
    (b,) = store.transact(lambda tx: tx.claim("w2", "t2", 1, 30.0, ["mod:t"]))
    assert b.id == step_id(store, run_id, "b")
    assert store.transact(lambda tx: tx.succeed(b.id, b.lease_token, "2")) is not None
    assert store.transact(lambda tx: tx.cancel_steps(run_id, "stop")) == 2
    rows = steps(store, run_id)
    assert {n: r["status"] for n, r in rows.items()} == {
        "a": "cancelled", "b": "succeeded", "c": "cancelled"}
    history = store.read(lambda tx: tx.attempts_of(run_id))
    assert [(h["outcome"], h["worker"]) for h in history] == [("cancelled", "w1")]
    a = held["a"]
    assert store.transact(lambda tx: tx.succeed(a.id, a.lease_token, "late")) is None
    assert store.transact(lambda tx: tx.cancel_steps(run_id, "again")) == 0, "ended once"
    assert steps(store, run_id)["a"]["error"] == "stop"
    assert len(store.read(lambda tx: tx.attempts_of(run_id))) == 1


def test_run_ids_like_matches_a_prefix_up_to_two(store: Store) -> None:
    ids = sorted(new_run(store) for _ in range(3))
    assert store.read(lambda tx: tx.run_ids_like(ids[0])) == [ids[0]]
    assert len(store.read(lambda tx: tx.run_ids_like(""))) == 2
    assert store.read(lambda tx: tx.run_ids_like("zz")) == []


def test_list_runs_filters_by_status_and_flow(store: Store) -> None:
    a = new_run(store, flow="shop:order")
    time.sleep(0.01)  # newest first, and SQLite's clock counts milliseconds
    b = new_run(store, flow="shop:refund")
    store.transact(lambda tx: tx.end_run(b, "cancelled", "x"))
    assert [r["id"] for r in store.read(lambda tx: tx.list_runs(None, None, 10))] == [b, a]
    assert [r["id"] for r in store.read(lambda tx: tx.list_runs("pending", None, 10))] == [a]
    assert [r["id"] for r in store.read(lambda tx: tx.list_runs(None, "order", 10))] == [a]
    assert [r["id"] for r in store.read(lambda tx: tx.list_runs(None, "shop:refund",
                                                                 10))] == [b]
    assert len(store.read(lambda tx: tx.list_runs(None, None, 1))) == 1


@pytest.mark.parametrize(("search", "found"), [
    ("customer.id=42", ["a"]), ("customer.id = 42", ["a"]), ("customer.id=7", ["b"]),
    ('code="42"', ["a"]), ("code=42", []), ("ok=true", ["a"]), ("ok=false", ["b"]),
    ("customer.name=Zoë", ["a"]), ("customer.name=Bob Smith", ["b"]), ("missing=1", []),
    ('"ok":true', ["a"]), ("Zoë", ["a"]), ("Bob", ["b"]), ("Bobby", []), ("code=NaN", []),
    ("code=[1, 2]", []), ("code=", [])])
def test_list_runs_searches_a_field_or_the_text(store: Store, search: str,
                                                found: list[str]) -> None:
    """NAME=VALUE asks for a field of the input at a value (a JSON scalar, or the text as
    typed); anything else is looked for literally in the input's JSON (where text beyond
    ASCII is stored escaped, and is found as typed)."""
    inputs = {"a": {"customer": {"id": 42, "name": "Zoë"}, "ok": True, "code": "42"},
              "b": {"customer": {"id": 7, "name": "Bob Smith"}, "ok": False, "code": "7"}}
    ids = {}
    for name, value in inputs.items():
        run_id = uuid.uuid4().hex
        store.transact(lambda tx, r=run_id, v=value: (
            tx.put_definition("fp", "flow", "dag", "{}"),
            tx.insert_run(r, "mod:flow", "fp", None, codec.dumps(v), "sum", 0)))
        ids[run_id] = name
    rows = store.read(lambda tx: tx.list_runs(None, None, 10, search=search))
    assert sorted(ids[r["id"]] for r in rows) == found


def test_list_runs_pages_by_keyset_and_filters_kind_key_time_and_input(store: Store) -> None:
    made = []
    for i in range(5):
        made.append(new_run(store, key=f"k{i}"))
        time.sleep(0.005)
    newest_first = list(reversed(made))
    page = store.read(lambda tx: tx.list_runs(None, None, 2))
    assert [r["id"] for r in page] == newest_first[:2]
    after = (page[-1]["created_at"], page[-1]["id"])
    nxt = store.read(lambda tx: tx.list_runs(None, None, 2, before=after))
    assert [r["id"] for r in nxt] == newest_first[2:4]
    assert [r["id"] for r in store.read(lambda tx: tx.list_runs(None, None, 9, key="k3"))] == [
        made[3]]
    assert len(store.read(lambda tx: tx.list_runs(None, None, 9, kind="dag"))) == 5
    assert store.read(lambda tx: tx.list_runs(None, None, 9, kind="machine")) == []
    middle = store.read(lambda tx: tx.list_runs(None, None, 9))[2]["created_at"]
    assert len(store.read(lambda tx: tx.list_runs(None, None, 9, since=middle))) == 3
    assert len(store.read(lambda tx: tx.list_runs(None, None, 9, until=middle))) == 2
    # the input's text, literally: % and _ are no wildcards
    assert len(store.read(lambda tx: tx.list_runs(None, None, 9, search='"x": 1'))) == 5
    assert store.read(lambda tx: tx.list_runs(None, None, 9, search="%")) == []


def test_step_counts_per_run(store: Store) -> None:
    a, b = new_run(store), new_run(store)
    got = claim(store, limit=1)[0]
    assert store.transact(lambda tx: tx.succeed(got.id, got.lease_token, "1")) is not None
    counts = store.read(lambda tx: tx.step_counts([a, b, "nope"]))
    assert counts == {a: (1, 2, 0), b: (0, 2, 0)}
    assert store.read(lambda tx: tx.step_counts([])) == {}


def test_a_child_run_is_linked_to_its_parent_step(store: Store) -> None:
    parent, child, other = new_run(store), new_run(store), new_run(store)
    store.transact(lambda tx: tx.link_child(child, parent, "s#1"))
    assert store.read(lambda tx: tx.parent_of(child)) == (parent, "s#1")
    assert store.read(lambda tx: tx.run_head(child))[2] == parent
    assert store.read(lambda tx: tx.parent_of(parent)) is None
    [found] = store.read(lambda tx: tx.children_of(parent))
    assert (found["id"], found["status"], found["step"]) == (child, "pending", "s#1")
    assert store.read(lambda tx: tx.children_of(other)) == []


def test_run_id_by_key_finds_the_run_of_a_key(store: Store) -> None:
    run_id = new_run(store, key="k-1")
    assert store.read(lambda tx: tx.run_id_by_key("k-1")) == run_id
    assert store.read(lambda tx: tx.run_id_by_key("k-2")) is None
