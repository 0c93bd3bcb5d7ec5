"""Acceptance: a 50-step run survives a worker killed with SIGKILL over and over.

A real `waypost worker` process serves the run and is killed with kill -9 at >= 20 random
points (during start-up, between claims, while task bodies run, right after a body
returned, i.e. while its outcome is being committed) and restarted each time. Every task
execution is witnessed by a line in an fsync'ed ledger file, which is what lets the test
check "exactly once" against what really ran rather than against what the store says.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import waypost as wp
from tests.flows.crash import CRASH_STEPS, LEDGER_ENV, crash_chain

from ._support import (
    Workers,
    fresh_store_like,
    hold_step_on_first_worker,
    ledger_lines,
    read_ledger,
    steps_by_name,
    wait_for,
)

pytestmark = pytest.mark.slow

KILLS = 28  # the issue asks for at least 20; more if the run lasts
MIN_KILLS = 20
LEASE = "2"
WORKER_OPTIONS = ("--lease", LEASE, "--poll", "0.05", "--concurrency", "4", "--grace", "1")


@pytest.fixture
def ref_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    yield from fresh_store_like(db_url, tmp_path)


def _clean_reference(ref_url: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The same run, in process, on its own fresh store, with nothing killed."""
    monkeypatch.delenv(LEDGER_ENV, raising=False)
    with wp.Engine(ref_url, poll=0.05) as ref:
        run_id = ref.start(crash_chain, {"seed": seed})
        with ref.serving():
            ref.result(run_id, timeout=60)
        return ref.show(run_id)


def test_run_survives_repeated_kill_9(db_url: str, workers: Workers, ref_url: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rng_seed = int(os.environ.get("WAYPOST_CRASH_SEED", random.randrange(2**32)))
    rng = random.Random(rng_seed)
    why = f"(rerun with WAYPOST_CRASH_SEED={rng_seed})"
    flow_seed = rng.randrange(1, 10**9)
    ledger = workers.ledger
    assert len(crash_chain.graph.nodes) == CRASH_STEPS

    engine = wp.Engine(db_url)
    try:
        run_id = engine.start(crash_chain, {"seed": flow_seed})

        # -- kill -9 at random points, restarting the worker each time ----------------------
        # After each kill (the process reaped, so it can write nothing more) remember which
        # steps the store calls succeeded and how long the ledger was: none of those steps
        # may ever run again.
        snapshots: list[tuple[int, set[str]]] = []
        modes: Counter[str] = Counter()
        proc = workers.start(*WORKER_OPTIONS)
        kills = 0
        started = time.monotonic()
        while kills < KILLS and engine.status(run_id) != "succeeded":
            # The run must not finish before MIN_KILLS: once few steps are left per kill
            # still owed, only kills that let little progress through are drawn.
            left = CRASH_STEPS - (len(snapshots[-1][1]) if snapshots else 0)
            tight = left < 2 * (MIN_KILLS - kills) + 4
            if rng.random() < 0.3:
                # anywhere from interpreter start-up through migration, registration, the
                # sweeper's first pass and the first claims
                modes["blind"] += 1
                time.sleep(rng.uniform(0.0, 0.1 if tight else 0.3))
            else:
                # just after a task body finished: a delay of 0 to a few ms lands between the
                # body's return and the commit of its outcome, or inside that commit. Letting
                # a few executions through first spreads the kills over the whole run.
                target = len(read_ledger(ledger)) + (1 if tight else rng.choice([1, 1, 2, 3]))
                try:
                    # (the run may also have just finished: then there is no progress to see)
                    wait_for(lambda t=target, p=proc: ledger_lines(ledger) >= t or
                             p.poll() is not None or engine.status(run_id) == "succeeded",
                             30, f"progress of the run {why}", interval=0.0005)
                except AssertionError as exc:
                    state = [(s["name"], s["status"], s["worker"], s["attempts"])
                             for s in engine.show(run_id)["steps"]
                             if s["status"] not in ("succeeded", "pending")]
                    raise AssertionError(f"{exc}\nsteps: {state}\n{workers.all_logs()}") from None
                r = rng.random()
                if r < 0.35 or (tight and r < 0.7):
                    modes["at once"] += 1
                    delay = 0.0
                elif r < 0.6 or tight:
                    modes["< 5 ms"] += 1
                    delay = rng.uniform(0.0, 0.005)
                elif r < 0.9:
                    modes["5-50 ms"] += 1
                    delay = rng.uniform(0.005, 0.05)
                else:
                    modes["50-150 ms"] += 1
                    delay = rng.uniform(0.05, 0.15)
                time.sleep(delay)
            assert proc.poll() is None, (
                f"worker exited on its own (rc {proc.returncode}) {why}\n{workers.all_logs()}")
            workers.kill(proc)
            kills += 1
            view = engine.show(run_id)
            done = {s["name"] for s in view["steps"] if s["status"] == "succeeded"}
            snapshots.append((len(read_ledger(ledger)), done))
            proc = workers.start(*WORKER_OPTIONS)
        kill_phase = time.monotonic() - started
        print(f"\n{kills} kills in {kill_phase:.1f}s, modes {dict(modes)}; steps done after "
              f"each kill: {[len(done) for _, done in snapshots]} {why}")

        assert kills >= MIN_KILLS, (
            f"the run finished after only {kills} kills; the test must kill at least "
            f"{MIN_KILLS} times {why}")

        # -- let the last worker finish the run ----------------------------------------------
        output = engine.result(run_id, timeout=60)
        rc = workers.stop(proc)
        assert rc == 0, workers.all_logs()
        view = engine.show(run_id)
    finally:
        engine.close()

    logs = workers.all_logs()
    assert "Traceback" not in logs, logs

    # -- the run completed, with what a clean run computes -----------------------------------
    assert view["status"] == "succeeded"
    steps = steps_by_name(view)
    assert len(steps) == CRASH_STEPS
    assert all(s["status"] == "succeeded" for s in steps.values()), {
        n: s["status"] for n, s in steps.items() if s["status"] != "succeeded"}
    reference = _clean_reference(ref_url, flow_seed, monkeypatch)
    assert reference["status"] == "succeeded"
    assert output == reference["output"], why
    assert view["output"] == reference["output"], why
    ref_steps = steps_by_name(reference)
    assert set(ref_steps) == set(steps)
    for name, step in steps.items():
        assert step["input"] == ref_steps[name]["input"], f"{name} {why}"
        assert step["input_checksum"] == ref_steps[name]["input_checksum"], f"{name} {why}"
        assert step["output"] == ref_steps[name]["output"], f"{name} {why}"

    # -- exactly once, against the ledger -----------------------------------------------------
    lines = read_ledger(ledger)
    execs_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in lines:
        assert line["run"] == run_id
        execs_of[line["step"]].append(line)
    keys = {s["idempotency_key"] for s in steps.values()}
    assert len(keys) == CRASH_STEPS, "idempotency keys must differ between steps"

    reexecuted = {}
    for name, step in steps.items():
        execs = execs_of.get(name, [])
        # every step ran, and every execution of it used the step's one idempotency key
        assert execs, f"step {name} succeeded but its body never ran {why}"
        assert {e["key"] for e in execs} == {step["idempotency_key"]}, f"{name} {why}"
        # no attempt ran twice
        attempts = [e["attempt"] for e in execs]
        assert len(attempts) == len(set(attempts)), f"{name}: attempt ran twice: {execs} {why}"
        # the committed outcome is the last attempt's, and that attempt ran exactly once
        assert attempts.count(step["attempts"]) == 1, (
            f"{name}: committed attempt {step['attempts']} not in ledger {attempts} {why}")
        # every other execution belongs to an attempt the store knows was interrupted
        outcomes = {h["attempt"]: h["outcome"] for h in step["history"]}
        assert set(outcomes.values()) <= {"lost"}, f"{name}: {step['history']} {why}"
        assert len(outcomes) == step["attempts"] - 1, f"{name}: {step['history']} {why}"
        for a in attempts:
            if a != step["attempts"]:
                assert outcomes.get(a) == "lost", (
                    f"{name}: attempt {a} ran but was neither committed nor lost "
                    f"({step['history']}) {why}")
        if len(execs) > 1:
            reexecuted[name] = attempts

    # a step never ran before the committed executions of the steps it depends on finished
    committed = {name: next(e for e in execs_of[name] if e["attempt"] == step["attempts"])
                 for name, step in steps.items()}
    for name, node in crash_chain.graph.nodes.items():
        for dep in node.deps:
            for e in execs_of[name]:
                assert e["start"] >= committed[dep]["end"], f"{name} ran before {dep} {why}"

    # no step whose success the store had committed before a kill ran again after it
    for i, (count, done) in enumerate(snapshots):
        late = [(j, line["step"], line["attempt"]) for j, line in enumerate(lines[count:], count)
                if line["step"] in done]
        assert not late, (
            f"steps committed as succeeded before kill #{i + 1} ran again after it: {late} {why}")
    lost = sum(len(s["history"]) for s in steps.values())
    print(f"{lost} lost attempts; re-executed after a kill between body and commit: "
          f"{reexecuted}")
    assert lost > 0, f"no kill interrupted a step: the test exercised nothing {why}"


def test_restart_after_kill_9_does_not_wait_out_the_lease(db_url: str,
                                                          workers: Workers) -> None:
    """A worker killed with kill -9 while it holds a step, and a worker restarted on the same
    host: the new worker sees the dead pid and takes the step back at once (sweeper.py:
    "its leases are expired at once, which is what makes restarts after a crash fast"),
    not only after the dead worker's 30 s lease."""
    options = ("--lease", "30", "--poll", "0.05", "--concurrency", "1")
    engine = wp.Engine(db_url)
    try:
        first, first_id, run_id = hold_step_on_first_worker(workers, engine, options, 1.0)
        workers.kill(first)
        killed = time.monotonic()
        second = workers.start(*options)
        try:
            output = engine.result(run_id, timeout=10)
        except wp.ResultTimeout:
            step = engine.show(run_id)["steps"][0]
            pytest.fail(
                f"10 s after kill -9 and a restart, the step is still {step['status']} by "
                f"{step['worker']} (the dead worker): the restarted worker waits out the "
                f"30 s lease instead of expiring a dead local worker's leases at once")
        took = time.monotonic() - killed
        view = engine.show(run_id)
    finally:
        engine.close()
    assert output == second.pid
    (step,) = view["steps"]
    assert [h["outcome"] for h in step["history"]] == ["lost"]
    assert step["history"][0]["worker"].startswith(first_id)
    print(f"\nrestarted worker finished the interrupted step {took:.1f}s after the kill")
