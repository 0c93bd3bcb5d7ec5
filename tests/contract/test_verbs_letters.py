"""Contract: dead letters and retry budgets (store/sql/letters.py), on both stores."""

from __future__ import annotations

from waypost.store import Store
from waypost.store.protocol import Tx

from .helpers import claim, new_run, step, steps, store, while_open

__all__ = ["store"]


def test_dead_letters_are_listed_locked_and_replayed_once(store: Store) -> None:
    run_id = new_run(store, step("a", input='{"x": 5}'))
    other = new_run(store, step("a"))
    a, o = claim(store, limit=2)
    for c in (a, o):
        assert store.transact(lambda tx, c=c: tx.end_attempt(c.id, c.lease_token, "failed",
                                                             "boom", False))
        store.transact(lambda tx, c=c: tx.fail(c.id, "boom"))
        store.transact(lambda tx, c=c: tx.add_dead_letter(c.id, "boom"))
    letters = store.read(lambda tx: tx.dead_letters(None, None, 10))
    assert [x["run_id"] for x in letters] == [other, run_id]
    mine = store.read(lambda tx: tx.dead_letters("dead", run_id, 10))
    assert len(mine) == 1 and (mine[0]["step"], mine[0]["input"], mine[0]["attempts"]) == (
        "a", '{"x": 5}', 1)
    letter = store.transact(lambda tx: tx.dead_letter(mine[0]["id"]))
    assert letter == mine[0]
    assert store.transact(lambda tx: tx.dead_letter(987654)) is None
    store.transact(lambda tx: tx.letters_replayed([a.id], '{"x": 6}'))
    store.transact(lambda tx: tx.letters_replayed([a.id], '{"x": 7}'))
    store.transact(lambda tx: tx.letters_replayed([], None))
    replayed = store.read(lambda tx: tx.dead_letters("replayed", None, 10))
    assert [(x["step_id"], x["replay_input"]) for x in replayed] == [(a.id, '{"x": 6}')]
    store.transact(lambda tx: tx.patch_input(a.id, '{"x": 6}', "c6"))
    row = steps(store, run_id)["a"]
    assert (row["input"], row["input_checksum"]) == ('{"x": 6}', "c6")
    assert letters[0]["input"] == '{"x": 1}', "a letter keeps the input it died with"


def test_a_retry_budget_is_spent_per_window(store: Store) -> None:
    assert [store.transact(lambda tx: tx.spend_retry("t", 2, 3600.0)) for _ in range(3)] == [
        True, True, False]
    assert store.transact(lambda tx: tx.spend_retry("t", 2, 0.0)) is True, "a new window"
    budgets = store.read(lambda tx: tx.retry_budgets(["t", "u"]))
    assert set(budgets) == {"t"}
    assert (budgets["t"]["used"], budgets["t"]["refused"], budgets["t"]["refused_total"]) == (
        1, 0, 1)
    assert store.read(lambda tx: tx.retry_budgets([])) == {}


def test_two_spenders_of_the_last_retry_get_it_once(store: Store) -> None:
    """The budget row's lock: of two transactions spending the last unit at once, the
    second waits for the first's commit (PostgreSQL; on SQLite every writer does) and is
    refused."""
    assert store.transact(lambda tx: tx.spend_retry("t", 2, 3600.0)) is True

    def spend(tx: Tx) -> bool:
        return tx.spend_retry("t", 2, 3600.0)

    assert while_open(store, spend, spend, "INSERT INTO retry_budgets") == (True, False)
    budget = store.read(lambda tx: tx.retry_budgets(["t"]))["t"]
    assert (budget["used"], budget["refused"]) == (2, 1)
