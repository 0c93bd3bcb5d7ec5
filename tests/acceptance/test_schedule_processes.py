"""A cron schedule across three real worker processes (both stores): every due time fires
exactly once, its run has the due time as input, and the workers agree on it; and
`waypost schedules` lists, pauses and resumes it from the shell."""

from __future__ import annotations

import itertools
import json
import time
from datetime import datetime

import pytest

import waypost as wp

from ._support import Workers, read_ledger, wait_for
from .test_cli import ok, one_error_line, waypost

pytestmark = pytest.mark.slow

MODULE = "tests/flows/scheduled.py"
OPTIONS = ("--lease", "1", "--poll", "0.05", "--grace", "1")
NAME = "tests.flows.scheduled:every_two_seconds"
# Not imported here: an in-process worker of any test in this process would store and fire
# its schedules too (every worker stores the schedules of the code it has).
GAP = "tests/flows/gap.py"
PERIOD = 6.0  # tests/flows/gap.py
GAP_ONCE, GAP_SKIP = "tests.flows.gap:once", "tests.flows.gap:skip"


def test_a_cron_schedule_fires_once_per_due_time_with_three_workers(
        db_url: str, workers: Workers) -> None:
    procs = [workers.start(*OPTIONS, module=MODULE) for _ in range(3)]
    for proc in procs:
        workers.wait_serving(proc)
    wait_for(lambda: len(read_ledger(workers.ledger)) >= 4, 60, "four fires")
    time.sleep(0.5)
    for proc in procs:
        workers.stop(proc)
    ledger = read_ledger(workers.ledger)
    ran = [line["due"] for line in ledger]
    assert len(ran) == len(set(ran)), f"a due time ran twice: {sorted(ran)}"
    with wp.Engine(db_url) as engine:
        [schedule] = [s for s in engine.schedules() if s["name"] == NAME]
        runs = engine.runs(flow=NAME, limit=100)
        dues = [engine.show(r["id"])["input"]["scheduled_at"] for r in runs]
        assert schedule["last_run"] in {r["id"] for r in runs}
        assert schedule["name"] == NAME and schedule["paused"] is False
    assert len(dues) == len(set(dues)), f"a due time fired twice: {sorted(dues)}"
    assert set(ran) <= set(dues)  # (the last fire may not have run before the stop)
    moments = sorted(datetime.fromisoformat(d).timestamp() for d in dues)
    assert all(m % 2 == 0 for m in moments)  # on the schedule's due times
    gaps = {b - a for a, b in itertools.pairwise(moments)}
    assert gaps == {2.0}, f"a due time was skipped: {sorted(dues)}"


def test_after_a_worker_free_gap_once_fires_late_once_and_skip_waits(
        db_url: str, workers: Workers) -> None:
    """The store as workers left it three periods ago (next fires moved back), then a
    worker comes back more than the grace (half the period) after a due time: `once` fires
    that due time, late, and only that one; `skip` fires nothing until the next."""
    workers.stop(workers.start(*OPTIONS, module=GAP))  # it stores the two schedules
    with wp.Engine(db_url) as engine:
        for row in engine.schedules():
            due = datetime.fromisoformat(row["next_fire"]).timestamp()
            engine._store().transact(lambda tx, r=row, d=due: tx.advance_schedule(
                r["name"], d, d - 3 * PERIOD, None, None))
        before = {r["name"]: len(engine.runs(flow=r["name"])) for r in engine.schedules()}
        time.sleep((PERIOD / 2 + 0.1 - time.time()) % PERIOD)  # just past the grace
        back = time.time()
        latest = back - back % PERIOD  # the gap's last due time
        workers.wait_serving(workers.start(*OPTIONS, module=GAP))

        def dues(flow: str) -> list[float]:
            runs = engine.runs(flow=flow, limit=100)
            return sorted(datetime.fromisoformat(engine.show(r["id"])["input"]["scheduled_at"])
                          .timestamp() for r in runs)[before[flow]:]

        wait_for(lambda: latest + PERIOD in dues(GAP_SKIP) and latest + PERIOD in dues(GAP_ONCE),
                 30, "the first due time after the gap")
        assert dues(GAP_ONCE) == [latest, latest + PERIOD]  # one late fire for the gap
        assert dues(GAP_SKIP) == [latest + PERIOD]  # none for the gap


def test_schedules_are_listed_paused_and_resumed_from_the_shell(
        db_url: str, workers: Workers) -> None:
    workers.stop(workers.start(*OPTIONS, module=MODULE))  # it stored its code's schedule
    [row] = [json.loads(line) for line in ok(waypost("schedules", "--json", db=db_url))
             .splitlines()]
    assert (row["name"], row["cron"], row["tz"], row["missed"], row["paused"]) == (
        NAME, "* * * * * */2", "UTC", "once", False)
    assert datetime.fromisoformat(row["next_fire"]).timestamp() % 2 == 0
    table = ok(waypost("schedules", db=db_url))
    assert NAME in table and "* * * * * */2 (UTC)" in table
    assert ok(waypost("schedules", "pause", "every_two_seconds", db=db_url)).strip() == (
        f"schedule {NAME} paused")
    [row] = [json.loads(line) for line in ok(waypost("schedules", "--json", db=db_url))
             .splitlines()]
    assert row["paused"] is True and row["next_fire"] is None
    assert "paused" in ok(waypost("schedules", db=db_url))
    ok(waypost("schedules", "resume", NAME, db=db_url))
    [row] = [json.loads(line) for line in ok(waypost("schedules", "--json", db=db_url))
             .splitlines()]
    assert row["paused"] is False and row["next_fire"] is not None
    assert "no schedule 'nobody'" in one_error_line(
        waypost("schedules", "pause", "nobody", db=db_url), 2)
