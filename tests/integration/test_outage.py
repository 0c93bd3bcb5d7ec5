"""When the database goes away for a while, workers pause and carry on: no task fails,
no outcome is lost. On PostgreSQL the worker's connections are cut from the server side;
on SQLite another process holds the write lock ("database is locked")."""

from __future__ import annotations

import sqlite3
import threading
import time
from urllib.parse import parse_qs, urlsplit

import psycopg

import waypost as wp
from tests.conftest import PG_BASE

from .helpers import result_of


@wp.task()
def slow_inc(x: int) -> int:
    time.sleep(0.02)
    return x + 1


@wp.flow()
def long_chain(x: int) -> int:
    for _ in range(30):
        x = slow_inc(x)
    return x


def _disrupt(url: str, stop: threading.Event, cuts: list[int]) -> None:
    """Cut the database off from the workers, several times, until told to stop."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        while not stop.is_set():
            conn.execute("BEGIN IMMEDIATE")  # every writer now sees "database is locked"
            time.sleep(0.6)
            conn.execute("COMMIT")
            cuts.append(1)
            time.sleep(0.1)
        conn.close()
        return
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        while not stop.is_set():
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s", (f"waypost:{schema}",)).fetchall()
            cuts.append(len(rows))
            time.sleep(0.15)


def test_worker_rides_out_a_database_outage(db_url: str) -> None:
    engine = wp.Engine(db_url, poll=0.05)
    try:
        run_id = engine.start(long_chain, {"x": 0})
        stop, cuts = threading.Event(), []
        with engine.serving() as worker:
            cutter = threading.Thread(target=_disrupt, args=(db_url, stop, cuts))
            time.sleep(0.05)
            cutter.start()
            time.sleep(1.5)
            stop.set()
            cutter.join()
            # The engine's own connection may have been cut too: result() must cope.
            assert result_of(engine, worker, run_id, timeout=60) == 30
        assert sum(cuts) >= 2, "the database was never cut off; the test tested nothing"
        view = engine.show(run_id)
        assert view["status"] == "succeeded"
        assert all(s["attempts"] == 1 and not s["history"] for s in view["steps"]), \
            "an outage must not count against any step's attempts"
        assert worker.stats.failed == 0
    finally:
        engine.close()
