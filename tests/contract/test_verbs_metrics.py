"""Contract: what `/metrics` reads (store/sql/metrics.py), on both stores."""

from __future__ import annotations

import threading
from typing import Any

from waypost.store import Store, open_store
from waypost.store.sql.metrics import DURATION_BUCKETS

from .helpers import TASK, claim, new_run, store

__all__ = ["store"]


def test_metrics_count_the_store(store: Store) -> None:
    new_run(store)  # a ready step and a pending one
    found = store.read(lambda tx: tx.metrics())
    assert found["open"] == [("mod:flow", TASK, "ready", 1, 0, 0)]
    assert found["finished"] == []
    assert found["ready"] == 1 and found["oldest_ready"] >= 0
    assert (found["timers_due"], found["expiries"], found["deliveries_pending"],
            found["dead_letters"]) == (0, {}, {}, [])


def test_ended_steps_are_counted_once_whether_rolled_up_or_not(store: Store) -> None:
    """A scrape sees ended steps from the totals up to the mark and live past it: rolling
    up moves a step from one to the other and changes no count, and a second roll-up
    over the same time adds nothing."""
    for _ in range(3):
        new_run(store)
    for got in claim(store, limit=3):
        assert store.transact(lambda tx, g=got: tx.succeed(g.id, g.lease_token, "1"))

    # one of them took two seconds: it is under the histogram's 2.5 s bound, not its 1 s
    store.transact(lambda tx: tx.execute(
        "UPDATE steps SET started_at = finished_at - 2.0 WHERE id = ?", (got.id,)))

    def finished() -> tuple[Any, Any]:
        found = store.read(lambda tx: tx.metrics())
        [(definition, task, counts, observed, seconds)] = found["durations"]
        took = (definition, task, dict(zip(DURATION_BUCKETS, counts, strict=True)),
                observed, round(seconds))
        return found["finished"], took

    before = finished()
    assert before[1][2][1.0] == 2 and before[1][2][2.5] == 3
    assert before[1][3:] == (3, 2)
    assert before[0] == [("mod:flow", TASK, "succeeded", 3, 3, 0)]
    assert store.transact(lambda tx: tx.roll_up_metrics(3600.0, 1000)) == 0  # too recent
    first = store.transact(lambda tx: tx.roll_up_metrics(0.0, 1))  # the first (with ties)
    assert 1 <= first <= 3 and finished() == before
    assert store.transact(lambda tx: tx.roll_up_metrics(0.0, 1000)) == 3 - first
    assert store.transact(lambda tx: tx.roll_up_metrics(0.0, 1000)) == 0
    assert finished() == before
    assert store.read(lambda tx: tx.metrics())["open"] == []


def test_scrapers_rolling_up_at_once_count_each_step_once(db_url: str, store: Store) -> None:
    """Four scrapers roll up at the same time, a step at a time: they take turns on the
    mark, so no step is added twice or skipped."""
    for _ in range(12):
        new_run(store)
    for got in claim(store, limit=12):
        assert store.transact(lambda tx, g=got: tx.succeed(g.id, g.lease_token, "1"))
    added: list[int] = []

    def scrape() -> None:
        mine = open_store(db_url)
        try:
            for _ in range(8):
                added.append(mine.transact(lambda tx: tx.roll_up_metrics(0.0, 1)))
        finally:
            mine.close()

    threads = [threading.Thread(target=scrape) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(added) == 12
    totals = store.read(lambda tx: tx.execute("SELECT steps FROM metric_totals").fetchall())
    assert [int(r[0]) for r in totals] == [12]
    found = store.read(lambda tx: tx.metrics())
    assert found["finished"] == [("mod:flow", TASK, "succeeded", 12, 12, 0)]
    assert [d[3] for d in found["durations"]] == [12]
