"""SQLite on a file system that fills up: the worker pauses like in any outage, and the
run carries on once there is room. (The commands' side, one line after their patience,
is in tests/contract/test_errors.py.)"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import waypost as wp
from tests.contract.test_errors import fill, small_disk

from .helpers import result_of

__all__ = ["small_disk"]
started = threading.Event()


@wp.task()
def bulky(n: int) -> str:
    started.set()
    time.sleep(0.5)  # the test fills the disk meanwhile
    return "x" * n


@wp.task()
def size(text: str) -> int:
    return len(text)


@wp.flow()
def bulky_flow(n: int) -> int:
    return size(bulky(n))


def test_a_worker_waits_out_a_full_disk(small_disk: Path) -> None:
    path = small_disk / "waypost.db"
    engine = wp.Engine(f"sqlite:///{path}", poll=0.05)
    try:
        with engine.serving() as worker:
            run_id = engine.start(bulky_flow, {"n": 100_000})
            assert started.wait(20)
            conn = sqlite3.connect(path, timeout=5)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            filler = fill(small_disk)
            time.sleep(1.5)  # the output's commit cannot fit: the worker must wait
            assert getattr(worker, "_failure", None) is None, "the worker died"
            assert engine.show(run_id)["status"] == "running"
            filler.unlink()
            assert result_of(engine, worker, run_id, timeout=60) == 100_000
        assert worker.stats.failed == 0
    finally:
        engine.close()
