"""A worker paused inside its outcome-and-claim transaction must not stop the others for
longer than its lease.

On PostgreSQL the server ends a session idle in a transaction for longer than the
worker's lease, so its locks go; the paused worker's commit then fails, its transaction
is retried on a new connection, and the lease fence refuses its stale outcomes. On SQLite
the paused process's write lock cannot be broken by anyone else (see
`Store.bound_transactions`): what is bounded there is that readers never wait on it and
writers carry on the moment it is gone.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import waypost as wp
from tests.conftest import pg_schema_url
from tests.flows.stalled import fan
from waypost.store.testing import STALL_ENV

from ._support import PYTHON, ROOT, Workers, read_ledger, wait_for

MODULE = "tests/flows/stalled.py"
LEASE = "3"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


def test_a_worker_paused_in_its_transaction_does_not_stop_the_others(
        pg_url: str, tmp_path: Path) -> None:
    ledger, marker = tmp_path / "ledger.jsonl", tmp_path / "stalled"
    workers = Workers(pg_url, ledger, tmp_path)
    engine = wp.Engine(pg_url)
    try:
        os.environ[STALL_ENV] = str(marker)
        try:
            paused = workers.start("--lease", LEASE, "--concurrency", "2", module=MODULE)
        finally:
            del os.environ[STALL_ENV]
        workers.wait_serving(paused)
        runs = [engine.start(fan, {"items": list(range(r * 10, r * 10 + 10))})
                for r in range(4)]
        wait_for(marker.exists, 30, "the worker to reach the stall inside its transaction")
        paused.send_signal(signal.SIGSTOP)
        try:
            others = [workers.start("--lease", LEASE, module=MODULE) for _ in range(2)]
            for proc in others:
                workers.wait_serving(proc)
            for run_id in runs:  # finished by the others while the first is still paused
                assert engine.result(run_id, timeout=60) == [2 * i for i in range(
                    runs.index(run_id) * 10, runs.index(run_id) * 10 + 10)], workers.all_logs()
            assert paused.poll() is None
        finally:
            paused.send_signal(signal.SIGCONT)
        # Resumed: its killed session's commit fails, the retry's outcomes are refused.
        wait_for(lambda: "discarded" in workers.log(paused) or paused.poll() is not None,
                 30, "the resumed worker to find its outcomes refused")
        assert paused.poll() is None, workers.log(paused)
        executions = collections.Counter(e["key"] for e in read_ledger(ledger))
        twice = [key for key, n in executions.items() if n > 1]
        by_paused = {e["key"] for e in read_ledger(ledger) if e["pid"] == paused.pid}
        assert set(twice) <= by_paused, "only what the paused worker ran may run again"
        assert all(n <= 2 for n in executions.values())
        for run_id in runs:
            view = engine.show(run_id)
            assert view["status"] == "succeeded"
            assert all(s["status"] == "succeeded" for s in view["steps"])
    finally:
        engine.close()
        workers.close()


def test_sqlite_readers_never_wait_on_a_paused_writer_and_writers_resume(
        tmp_path: Path) -> None:
    """A process paused holding SQLite's write lock: `show` still answers at once, and a
    write waiting on the lock completes as soon as the paused process is gone."""
    url = f"sqlite:///{tmp_path / 'waypost.db'}"
    engine = wp.Engine(url)
    run_id = engine.start(fan, {"items": [1, 2]})
    holder = subprocess.Popen(
        [PYTHON, "-c", "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(tmp_path / 'waypost.db')!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(3600)"],
        cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        holder.send_signal(signal.SIGSTOP)
        assert engine.show(run_id)["status"] == "pending"  # a read: WAL, no wait
        probe = sqlite3.connect(tmp_path / "waypost.db", timeout=0.1, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            probe.execute("BEGIN IMMEDIATE")
        probe.close()
        holder.kill()
        holder.wait(10)
        engine.cancel(run_id)  # a write: the lock went with the process
        assert engine.show(run_id)["status"] == "cancelled"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        engine.close()
