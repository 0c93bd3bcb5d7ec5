"""Acceptance: several worker processes share one store without running anything twice,
and a worker paused past its lease cannot record the attempt it lost."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import time
from collections import defaultdict
from typing import Any

import pytest

import waypost as wp
from tests.flows.crash import small, small_expected

from ._support import Workers, hold_step_on_first_worker, read_ledger, wait_for

pytestmark = pytest.mark.slow

RUNS = 500
CONCURRENCY = 4
STATS = re.compile(r"stopped: (\d+) succeeded, (\d+) failed, (\d+) discarded")


def _stats(log: str) -> tuple[int, int, int]:
    found = STATS.findall(log)
    assert len(found) == 1, log
    succeeded, failed, discarded = found[0]
    return int(succeeded), int(failed), int(discarded)


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


@pytest.mark.parametrize("n_workers", [2, 4])
def test_many_runs_on_several_workers_run_each_step_once(
        db_url: str, workers: Workers, n_workers: int) -> None:
    engine = wp.Engine(db_url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # half the runs wait as a backlog that all workers rush at when they start; the
        # other half arrive while the workers are busy
        started = time.monotonic()
        run_ids = {engine.start(small, {"n": n}): n for n in range(RUNS // 2)}
        procs = [workers.start("--concurrency", str(CONCURRENCY), "--lease", "10",
                               "--poll", "0.05") for _ in range(n_workers)]
        run_ids.update({engine.start(small, {"n": n}): n for n in range(RUNS // 2, RUNS)})
        assert len(run_ids) == RUNS
        deadline = started + 50
        outputs = {}
        for run_id in run_ids:
            outputs[run_id] = engine.result(run_id, timeout=max(0.1, deadline - time.monotonic()))
        elapsed = time.monotonic() - started
        views = [engine.show(run_id) for run_id in run_ids]
    finally:
        engine.close()
    codes = [workers.stop(proc) for proc in procs]
    logs = workers.all_logs()
    print(f"\n{RUNS} runs on {n_workers} workers in {elapsed:.1f}s")
    assert codes == [0] * n_workers, logs
    assert "Traceback" not in logs, logs

    # every run succeeded with the right output, every step on its first attempt
    for run_id, n in run_ids.items():
        assert outputs[run_id] == small_expected(n)
    for view in views:
        assert view["status"] == "succeeded"
        for step in view["steps"]:
            assert step["status"] == "succeeded", step
            assert step["attempts"] == 1, step
            assert step["history"] == [], step

    # the workers' own accounts: 3 steps per run committed in all, nothing discarded
    stats = [_stats(workers.log(proc)) for proc in procs]
    assert sum(s[0] for s in stats) == 3 * RUNS, stats
    assert all(s[1] == 0 and s[2] == 0 for s in stats), stats

    # the ledger: each step of each run executed exactly once, never two at a time
    lines = read_ledger(workers.ledger)
    execs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        execs[(line["run"], line["step"])].append(line)
    for (run_id, step), runs in execs.items():
        spans = sorted((e["start"], e["end"]) for e in runs)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"{step} of {run_id} ran twice at once: {runs}"
    expected = {(r, s) for r in run_ids for s in ("first", "second", "third")}
    assert set(execs) == expected
    twice = {k: v for k, v in execs.items() if len(v) != 1}
    assert not twice, f"steps executed more than once: {twice}"
    assert len(lines) == 3 * RUNS
    for line in lines:
        assert line["attempt"] == 1, line
    keys = {line["key"] for line in lines}
    assert len(keys) == 3 * RUNS, "every step of every run has its own idempotency key"
    for view in views:
        for step in view["steps"]:
            assert execs[(view["id"], step["name"])][0]["key"] == step["idempotency_key"]

    # a successor never started before its predecessor's body had finished
    for run_id in run_ids:
        ends = {s: execs[(run_id, s)][0] for s in ("first", "second", "third")}
        assert ends["first"]["end"] <= ends["second"]["start"]
        assert ends["second"]["end"] <= ends["third"]["start"]

    # every worker took part, and none ran more attempts at once than its concurrency
    by_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for line in lines:
        by_pid[line["pid"]].append((line["start"], line["end"]))
    assert set(by_pid) == {p.pid for p in procs}, {p: len(s) for p, s in by_pid.items()}
    for pid, spans in by_pid.items():
        assert _max_overlap(spans) <= CONCURRENCY, pid


def test_worker_paused_past_its_lease_records_nothing(db_url: str, workers: Workers) -> None:
    """SIGSTOP a worker while its task runs, let another worker take the step over and
    finish it, then SIGCONT the first: it must record nothing for the attempt it lost."""
    options = ("--concurrency", "1", "--lease", "1", "--poll", "0.05", "--grace", "5")
    engine = wp.Engine(db_url)
    try:
        first, first_id, run_id = hold_step_on_first_worker(workers, engine, options, 1.5)
        workers.pause(first)
        paused = time.monotonic()

        second = workers.start(*options)
        assert engine.result(run_id, timeout=30) == second.pid
        took = time.monotonic() - paused
        snapshot = engine.show(run_id)
        assert [line["pid"] for line in read_ledger(workers.ledger)] == [second.pid]

        first.send_signal(signal.SIGCONT)
        # the first worker's body finishes late and it tries to report...
        wait_for(lambda: len(read_ledger(workers.ledger)) == 2, 20,
                 "the paused worker's task body to finish")
        # ...or, first, learns at its next lease renewal that the attempt is no longer its own
        wait_for(lambda: "no longer holds its lease" in workers.log(first), 20,
                 "the paused worker to find out it lost the attempt")
        time.sleep(0.3)  # a wrong write would have committed by now
        after = engine.show(run_id)
    finally:
        engine.close()
    assert workers.stop(first) == 0
    assert workers.stop(second) == 0
    logs = workers.all_logs()
    assert "Traceback" not in logs, logs
    print(f"\nthe second worker finished the step {took:.1f}s after the first was paused")

    # ...and nothing of it reached the store
    assert after == snapshot
    assert after["status"] == "succeeded"
    assert after["output"] == second.pid
    (step,) = after["steps"]
    assert step["status"] == "succeeded"
    assert step["output"] == second.pid
    assert step["attempts"] == 2
    assert [h["outcome"] for h in step["history"]] == ["lost"]
    (lost,) = step["history"]
    assert lost["attempt"] == 1
    assert lost["worker"].startswith(first_id), lost
    assert lost["error"]["type"] == "LeaseExpired", lost

    # the ledger shows both executions (the first one did run), same key, one per attempt
    lines = read_ledger(workers.ledger)
    assert [(line["pid"], line["attempt"]) for line in lines] == [(second.pid, 2), (first.pid, 1)]
    assert {line["key"] for line in lines} == {step["idempotency_key"]}

    # the workers' own accounts: exactly one success; the paused worker's attempt was
    # cancelled when it found its lease gone, or its late outcome discarded
    assert _stats(workers.log(first))[:2] == (0, 0), workers.log(first)
    assert _stats(workers.log(second)) == (1, 0, 0), workers.log(second)
