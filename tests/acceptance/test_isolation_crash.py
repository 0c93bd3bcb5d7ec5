"""Acceptance: a process-isolated task's child does not outlive a worker killed with kill -9,
and the step is retried by the next worker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import waypost as wp
from tests.flows.isolated import isolated_run
from waypost.runtime.process.sweeper import process_gone

from ._support import Workers, wait_for

pytestmark = pytest.mark.slow

OPTIONS = ("--lease", "30", "--poll", "0.05", "--concurrency", "2")
MODULE = "tests/flows/isolated.py"


def _parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_the_child_of_a_killed_worker_exits_and_the_step_is_retried(
        db_url: str, workers: Workers, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    engine = wp.Engine(db_url)
    try:
        first = workers.start(*OPTIONS, module=MODULE)
        workers.wait_serving(first)
        run_id = engine.start(isolated_run, {"pidfile": str(pidfile)})
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), 20,
                 "the child process to start")
        child = int(pidfile.read_text())
        assert child != first.pid and _parent_of(child) == first.pid

        workers.kill(first)
        killed = time.monotonic()
        wait_for(lambda: process_gone(child), 10, f"child {child} to exit after its worker died")
        print(f"\nthe orphaned child was gone {time.monotonic() - killed:.2f}s after kill -9")

        workers.start(*OPTIONS, module=MODULE)
        output = engine.result(run_id, timeout=30)
        view = engine.show(run_id)
    finally:
        engine.close()
    assert output == "done on attempt 2"
    (step,) = view["steps"]
    assert [h["outcome"] for h in step["history"]] == ["lost"]
    assert "Traceback" not in workers.all_logs(), workers.all_logs()
