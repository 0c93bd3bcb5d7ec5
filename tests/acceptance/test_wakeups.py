"""An idle worker learns of new work at once, not at its next poll: through NOTIFY from
another process on PostgreSQL, and directly from `Engine.start` in its own process (the
only way on SQLite, which has no notifications). Workers here poll every 30 s, so a run
that finishes in seconds was woken."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import waypost as wp
from tests.conftest import pg_schema_url
from tests.flows.crash import small, small_expected

from ._support import Workers

POLL = "30"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """PostgreSQL only: SQLite has no cross-process notification (its workers poll)."""
    yield from pg_schema_url()


def test_a_worker_in_another_process_wakes_on_notify(pg_url: str, tmp_path: Path) -> None:
    workers = Workers(pg_url, tmp_path / "ledger.jsonl", tmp_path)
    try:
        proc = workers.start("--poll", POLL)
        workers.wait_serving(proc)
        time.sleep(1.5)  # long enough for the worker's idle back-off to have grown
        with wp.Engine(pg_url) as engine:
            run_id = engine.start(small, {"n": 3})
            assert engine.result(run_id, timeout=10) == small_expected(3)
    finally:
        workers.close()


def test_an_in_process_worker_wakes_on_start(db_url: str) -> None:
    with wp.Engine(db_url, poll=float(POLL)) as engine, engine.serving():
        time.sleep(1.5)
        run_id = engine.start(small, {"n": 4})
        assert engine.result(run_id, timeout=10) == small_expected(4)
