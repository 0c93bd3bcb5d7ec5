"""Run deadlines and `cancel` (both stores): unfinished steps end, running code is told,
late results are never recorded, and the run can be resumed."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

import waypost as wp

from .helpers import step_of

ROOT = Path(__file__).resolve().parents[2]


@wp.task(heartbeat=0.2)
def long_job(marker: str, seconds: float, ctx: wp.Context) -> str:
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            ctx.heartbeat({"left": round(end - time.monotonic(), 1)})
            time.sleep(0.05)
    except wp.Cancelled:
        Path(marker).write_text("cancelled")
        raise
    return "finished"


@wp.task()
def after(value: str) -> str:
    return value + "!"


@wp.flow()
def long_flow(marker: str, seconds: float) -> str:
    return after(long_job(marker, seconds))


@wp.flow(deadline=timedelta(seconds=0.5))
def hurried(marker: str, seconds: float) -> str:
    return after(long_job(marker, seconds))


def _wait_marker(marker: Path) -> str:
    deadline = time.monotonic() + 15
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return marker.read_text()


def test_a_run_past_its_deadline_fails_and_its_running_step_is_cancelled(
        engine: wp.Engine, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = engine.start(hurried, {"marker": str(marker), "seconds": 20})
    with engine.serving():
        with pytest.raises(wp.RunFailed, match="deadline"):
            engine.result(run_id, timeout=15)
        assert _wait_marker(marker) == "cancelled"
    view = engine.show(run_id)
    assert view["status"] == "failed"
    assert view["error"]["type"] == "DeadlineExceeded"
    job = step_of(view, "long_job")
    assert job["status"] == "cancelled" and job["output"] is None
    assert [h["outcome"] for h in job["history"]] == ["cancelled"]
    assert step_of(view, "after")["status"] == "cancelled"


def test_a_deadline_given_at_start_overrides_none(engine: wp.Engine, tmp_path: Path) -> None:
    run_id = engine.start(long_flow, {"marker": str(tmp_path / "m"), "seconds": 20},
                          deadline=0.5)
    with engine.serving(), pytest.raises(wp.RunFailed, match="deadline"):
        engine.result(run_id, timeout=15)
    with pytest.raises(wp.InputError, match="future"):
        engine.start(long_flow, {"marker": "x", "seconds": 1}, deadline=0)


def test_cancel_ends_a_run_and_it_can_be_resumed(engine: wp.Engine, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = engine.start(long_flow, {"marker": str(marker), "seconds": 20})
    with engine.serving():
        deadline = time.monotonic() + 15
        while step_of(engine.show(run_id), "long_job")["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert engine.cancel(run_id, "changed my mind") == 2
        assert _wait_marker(marker) == "cancelled"
        with pytest.raises(wp.RunFailed, match="changed my mind"):
            engine.result(run_id, timeout=5)
        assert engine.status(run_id) == "cancelled"
        with pytest.raises(wp.InputError, match="already cancelled"):
            engine.cancel(run_id)
    # a cancelled run resumes like a failed one (here: after shortening the job)
    assert engine.resume(run_id) == 2


def test_waypost_cancel_on_the_command_line(engine: wp.Engine, tmp_path: Path,
                                            db_url: str) -> None:
    run_id = engine.start(long_flow, {"marker": str(tmp_path / "m"), "seconds": 20})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "waypost.cli", "--db", db_url, *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    done = cli("cancel", run_id[:14], "--reason", "operator says no")
    assert done.returncode == 0, done.stderr
    assert engine.status(run_id) == "cancelled"
    assert engine.show(run_id)["error"]["message"] == "operator says no"
    again = cli("cancel", run_id)
    assert again.returncode == 2 and "already cancelled" in again.stderr
