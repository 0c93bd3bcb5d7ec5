"""Acceptance: worker identity across kill -9 and restarts, with real worker processes.

A worker process is one incarnation of its worker id. A process restarted under the same
`--name` must not inherit (renew) the leases of the one that was killed: those attempts
are given back as lost at once, and the restart runs them again."""

from __future__ import annotations

import pytest

import waypost as wp
from tests.flows.crash import held

from ._support import Workers, steps_by_name, wait_for

pytestmark = pytest.mark.slow

# Long, so that nothing here can pass by waiting a lease out.
OPTIONS = ("--name", "same-name", "--lease", "120", "--poll", "0.05", "--concurrency", "2")


def _worker_row(engine: wp.Engine, name: str) -> dict[str, object]:
    rows = engine._store().read(lambda tx: tx.execute(
        "SELECT pid, incarnation FROM workers WHERE id = ?", (name,)).fetchall())
    assert len(rows) == 1, rows
    return {"pid": int(rows[0][0]), "incarnation": rows[0][1]}


def test_a_worker_restarted_under_the_same_name_does_not_renew_the_dead_ones_leases(
        db_url: str, workers: Workers) -> None:
    """Defect 5: the restart renewed the killed process's leases (renewal by owner), and
    registering did not update the pid, so the step stayed running with nobody on it."""
    engine = wp.Engine(db_url)
    try:
        first = workers.start(*OPTIONS)
        workers.wait_serving(first)
        run_id = engine.start(held, {"seconds": 3.0})
        wait_for(lambda: steps_by_name(engine.show(run_id))["hold"]["status"] == "running",
                 30, "the first worker to claim the step")
        before = _worker_row(engine, "same-name")
        assert before["pid"] == first.pid
        workers.kill(first)

        second = workers.start(*OPTIONS)
        workers.wait_serving(second)
        after = _worker_row(engine, "same-name")
        assert after["pid"] == second.pid, "registering updates the pid"
        assert after["incarnation"] != before["incarnation"]
        assert engine.result(run_id, timeout=60) == second.pid
        step = steps_by_name(engine.show(run_id))["hold"]
        assert [(h["attempt"], h["outcome"]) for h in step["history"]] == [(1, "lost")]
        assert "given back as lost" in workers.log(second)
        assert workers.stop(second) == 0
    finally:
        engine.close()


def test_show_says_who_holds_a_step_after_kill_9_with_no_worker_left(
        db_url: str, workers: Workers) -> None:
    """With nobody left to sweep, `show` named the dead worker as the holder, no more."""
    engine = wp.Engine(db_url)
    try:
        first = workers.start("--name", "gone", "--lease", "3", "--poll", "0.05")
        workers.wait_serving(first)
        run_id = engine.start(held, {"seconds": 30.0})
        wait_for(lambda: steps_by_name(engine.show(run_id))["hold"]["status"] == "running",
                 30, "the worker to claim the step")
        assert steps_by_name(engine.show(run_id))["hold"]["waiting"] is None, "it renews"
        workers.kill(first)

        def waiting() -> str:
            return steps_by_name(engine.show(run_id))["hold"]["waiting"] or ""

        text = wait_for(lambda: "silent since" in waiting() and waiting(), 30,
                        "show to notice the silence")
        assert text.startswith(f"held by worker gone (pid {first.pid} on ")
        assert "lease runs out at " in text or "lease ran out at " in text
        wait_for(lambda: "lease ran out at " in waiting(), 30, "the lease to run out")
        step = steps_by_name(engine.show(run_id))["hold"]
        assert (step["status"], step["worker"]) == ("running", "gone")
    finally:
        engine.close()


def test_waypost_workers_lists_live_workers_and_what_they_serve(
        db_url: str, workers: Workers) -> None:
    import json
    import subprocess

    from ._support import PYTHON, ROOT

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, "-m", "waypost.cli", "--db", db_url, "workers", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)

    engine = wp.Engine(db_url)
    try:
        proc = workers.start("--name", "lister", "--lease", "30")
        workers.wait_serving(proc)
        listed = cli("--json")
        assert listed.returncode == 0, listed.stderr
        (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
        assert (row["id"], row["pid"]) == ("lister", proc.pid)
        assert row["incarnation"] and row["host"] and row["heartbeat_age"] < row["lease"]
        assert "tests.flows.crash:hold" in row["tasks"]
        assert [w["id"] for w in engine.workers()] == ["lister"]
        table = cli()
        assert table.returncode == 0 and "lister" in table.stdout and str(proc.pid) in table.stdout
        assert workers.stop(proc) == 0
        assert engine.workers() == [], "a stopped worker is no longer listed"
        assert cli("--json").stdout == ""
    finally:
        engine.close()
