"""Acceptance: limits hold across real worker processes (both stores).

The issue's test: with 2 worker processes and a limit of 20/s, 200 calls never exceed 20
in any 1-second window, measured from the calls' own timestamps (every window starting at
every call). And a worker killed with SIGKILL part-way does not break the limit, nor keep
the slots its attempts held: they free once its lease is expired, and every call completes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

import waypost as wp
from tests.flows.limited import burst, slow_burst
from tests.integration.helpers import most_at_once, most_in_any_window

from ._support import ROOT, Workers, read_ledger, wait_for

pytestmark = pytest.mark.slow

FLOWS = "tests/flows/limited.py"
OPTIONS = ("--concurrency", "8", "--poll", "0.05", "--lease", "2", "--grace", "1")


def start_workers(workers: Workers, n: int) -> list[subprocess.Popen[bytes]]:
    procs = [workers.start(*OPTIONS, module=FLOWS) for _ in range(n)]
    for proc in procs:
        workers.wait_serving(proc)
    return procs


def result(engine: wp.Engine, run_id: str, workers: Workers, timeout: float = 90) -> Any:
    try:
        return engine.result(run_id, timeout=timeout)
    except wp.ResultTimeout:
        raise AssertionError(f"run did not finish:\n{workers.all_logs()}") from None


def test_two_workers_never_exceed_20_calls_in_any_second(db_url: str, workers: Workers) -> None:
    first, second = start_workers(workers, 2)
    with wp.Engine(db_url) as engine:
        run_id = engine.start(burst, {"items": list(range(200))})
        assert result(engine, run_id, workers) == list(range(200))
    calls = [c for c in read_ledger(workers.ledger) if c["event"] == "call"]
    assert len(calls) == 200
    assert {c["pid"] for c in calls} == {first.pid, second.pid}, "both workers made calls"
    assert most_in_any_window([c["t"] for c in calls]) <= 20

    proc = subprocess.run([sys.executable, "-m", "waypost.cli", "--db", db_url, "limits",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = {row["name"]: row for row in map(json.loads, proc.stdout.splitlines())}
    assert listed["test-api"]["rate"] == "20/s"
    assert listed["test-api"]["concurrency"] is None
    assert listed["test-api"]["in_use"] == 0


def test_a_killed_worker_keeps_no_slot_and_breaks_no_limit(db_url: str,
                                                           workers: Workers) -> None:
    (victim,) = start_workers(workers, 1)

    def victim_mid_call() -> bool:
        entries = [e for e in read_ledger(workers.ledger) if e["pid"] == victim.pid]
        started = {(e["step"], e["attempt"]) for e in entries if e["event"] == "start"}
        ended = {(e["step"], e["attempt"]) for e in entries if e["event"] == "end"}
        return len(ended) >= 5 and bool(started - ended)

    with wp.Engine(db_url) as engine:
        run_id = engine.start(slow_burst, {"items": list(range(60))})
        # The second worker joins once the first is busy (a worker that frees a slot takes
        # it again in the same transaction, so the first would otherwise keep all three).
        (survivor,) = start_workers(workers, 1)
        wait_for(victim_mid_call, 30, "the victim to be in the middle of a call")
        workers.kill(victim)
        killed_at = time.time()
        assert result(engine, run_id, workers) == list(range(60))
        lost = [h for s in engine.show(run_id)["steps"] for h in s["history"]
                if h["outcome"] == "lost"]

    entries = read_ledger(workers.ledger)
    ends = {(e["step"], e["attempt"], e["pid"]): e["t"] for e in entries if e["event"] == "end"}
    starts = [e for e in entries if e["event"] == "start"]
    cut = [s for s in starts if (s["step"], s["attempt"], s["pid"]) not in ends]
    assert cut and all(s["pid"] == victim.pid for s in cut), "only the victim's calls were cut"
    assert len(lost) >= len(cut), "each cut call was a lost attempt (run again, below)"
    assert {key[0] for key in ends} == {f"call_slow_api[{i}]" for i in range(60)}
    assert any(s["pid"] == survivor.pid for s in starts if s["t"] > killed_at)
    # A cut call ended when its process died; its slot was held at least that long.
    intervals = [(s["t"], ends.get((s["step"], s["attempt"], s["pid"]), killed_at))
                 for s in starts]
    assert most_at_once(intervals) <= 3
    assert most_in_any_window([s["t"] for s in starts]) <= 20
