"""Gates, timers, escalations and dead letters as an operator meets them: real worker
processes (killed with SIGKILL while a gate waits), the `waypost` command, both stores."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import waypost as wp
from tests.flows.behaviour import executions
from tests.flows.humans import division, escalating, nap, paid_delivery, refund

from ._support import Workers, steps_by_name, wait_for
from .test_cli import ok, one_error_line, waypost

MODULE = "tests.flows.humans"


def _show(db_url: str, run_id: str) -> dict[str, Any]:
    return json.loads(ok(waypost("show", run_id, "--json", db=db_url)))


def _step_status(db_url: str, run_id: str, name: str) -> str:
    return str(steps_by_name(_show(db_url, run_id))[name]["status"])


def test_an_approval_gate_survives_a_worker_kill_while_waiting(
        db_url: str, workers: Workers, tmp_path: Path) -> None:
    workdir = str(tmp_path)
    with wp.Engine(db_url) as engine:
        run_id = engine.start(refund, {"workdir": workdir, "amount": 25})
    first = workers.start("--poll", "0.05", module=MODULE)
    wait_for(lambda: _step_status(db_url, run_id, "approve-refund") == "waiting", 30,
             "the gate to wait")
    workers.kill(first)
    assert executions(workdir, "reserve_funds") == 1

    one_error_line(waypost("approve", run_id, "send_money", db=db_url), code=2)
    ok(waypost("approve", run_id, "approve-refund", "--by", "ops-lead", db=db_url))
    second = workers.start("--poll", "0.05", module=MODULE)
    workers.wait_serving(second)
    wait_for(lambda: _show(db_url, run_id)["status"] == "succeeded", 30, "the run to finish")
    view = _show(db_url, run_id)
    assert view["output"] == "sent res-25"
    gate = steps_by_name(view)["approve-refund"]
    assert gate["output"]["by"] == "ops-lead"
    assert [(h["outcome"], h["worker"]) for h in gate["history"]] == [("approved", "ops-lead")]
    assert executions(workdir, "reserve_funds") == 1 and executions(workdir, "send_money") == 1
    assert "already decided" in one_error_line(
        waypost("approve", run_id, "approve-refund", db=db_url), code=2)


def test_a_rejected_gate_compensates_what_was_done(
        db_url: str, workers: Workers, tmp_path: Path) -> None:
    workdir = str(tmp_path)
    run_id = ok(waypost("start", f"{MODULE}:refund", "--input",
                        json.dumps({"workdir": workdir, "amount": 9}), db=db_url)).strip()
    workers.start("--poll", "0.05", module=MODULE)
    wait_for(lambda: _step_status(db_url, run_id, "approve-refund") == "waiting", 30,
             "the gate to wait")
    missing = waypost("reject", run_id, "approve-refund", db=db_url)
    assert missing.returncode == 2 and "Missing option '--reason'" in missing.stderr
    ok(waypost("reject", run_id[:12], "approve-refund", "--reason", "duplicate request",
               db=db_url))
    wait_for(lambda: _show(db_url, run_id)["status"] == "compensated", 30, "compensation")
    assert executions(workdir, "unreserve") == 1 and executions(workdir, "send_money") == 0
    text = ok(waypost("show", run_id, db=db_url))
    assert "rejected by" in text and "duplicate request" in text


def test_a_sleep_due_while_no_worker_runs_fires_once_afterwards(
        db_url: str, workers: Workers, tmp_path: Path) -> None:
    workdir = str(tmp_path)
    with wp.Engine(db_url) as engine:
        run_id = engine.start(nap, {"workdir": workdir, "seconds": 0.5})
    time.sleep(1.5)  # the timer is due, and no worker runs
    for _ in range(2):  # two workers, two sweepers, one firing
        workers.start("--poll", "0.05", module=MODULE)
    wait_for(lambda: _show(db_url, run_id)["status"] == "succeeded", 30, "the run to finish")
    time.sleep(1.0)  # any second firing would have happened by now
    assert executions(workdir, "wake") == 1
    sleep = steps_by_name(_show(db_url, run_id))["sleep"]
    assert sleep["status"] == "succeeded" and sleep["attempts"] == 0


def test_dead_letters_escalations_and_operators_from_the_command_line(
        db_url: str, workers: Workers, tmp_path: Path) -> None:
    workdir = str(tmp_path)
    with wp.Engine(db_url) as engine:
        dead = engine.start(division, {"a": 9, "b": 0})
        escalated = engine.start(escalating, {"workdir": workdir})
    workers.start("--poll", "0.05", module=MODULE)
    wait_for(lambda: _show(db_url, dead)["status"] == "failed", 30, "the division to die")
    [letter] = [json.loads(line) for line in
                ok(waypost("dlq", "list", "--json", db=db_url)).splitlines()]
    assert letter["run_id"] == dead and letter["input"] == {"args": [9, 0], "kwargs": {}}
    shown = ok(waypost("dlq", "show", str(letter["id"]), db=db_url))
    assert "ZeroDivisionError" in shown and "Traceback" in shown
    assert "not valid JSON" in one_error_line(
        waypost("dlq", "replay", str(letter["id"]), "--input", "{oops", db=db_url), code=2)
    ok(waypost("dlq", "replay", str(letter["id"]), "--input",
               '{"args": [9, 3], "kwargs": {}}', db=db_url))
    wait_for(lambda: _show(db_url, dead)["status"] == "succeeded", 30, "the replay")
    assert _show(db_url, dead)["output"] == 3.0
    assert ok(waypost("dlq", "list", db=db_url)).count(dead) == 0
    assert dead in ok(waypost("dlq", "list", "--all", db=db_url))

    wait_for(lambda: _show(db_url, escalated)["status"] == "needs_attention", 30,
             "the escalation")
    listed = ok(waypost("runs", "--status", "needs_attention", db=db_url))
    assert escalated in listed
    assert "waypost retry, skip or fail" in ok(waypost("show", escalated, db=db_url))
    ok(waypost("retry", escalated, "flaky", "--by", "oncall", db=db_url))
    wait_for(lambda: _show(db_url, escalated)["status"] == "succeeded", 30, "the retry")
    history = steps_by_name(_show(db_url, escalated))["flaky"]["history"]
    assert [(h["outcome"], h["worker"]) for h in history][-1] == ("retried", "oncall")
    assert "is succeeded" in one_error_line(
        waypost("skip", escalated, "flaky", "--output", "1", db=db_url), code=2)


def test_compensation_survives_a_worker_kill_mid_way(
        db_url: str, workers: Workers, tmp_path: Path) -> None:
    workdir = str(tmp_path)
    with wp.Engine(db_url) as engine:
        run_id = engine.start(paid_delivery, {"workdir": workdir})
    first = workers.start("--poll", "0.05", module=MODULE)
    wait_for(lambda: executions(workdir, "slow_refund") == 1, 30, "the refund to start")
    workers.kill(first)
    assert _show(db_url, run_id)["status"] == "compensating"
    workers.start("--poll", "0.05", module=MODULE)
    wait_for(lambda: _show(db_url, run_id)["status"] == "compensated", 30, "compensation")
    steps = steps_by_name(_show(db_url, run_id))
    # payment finished last, so it is undone first; the killed refund ran again, same key
    assert steps["compensate:take_payment"]["finished_at"] <= \
        steps["compensate:book"]["started_at"]
    assert [h["outcome"] for h in steps["compensate:take_payment"]["history"]] == ["lost"]
    assert executions(workdir, "slow_refund") == 2
    assert executions(workdir, "undo_booking") == 1
    assert executions(workdir, "take_payment") == 1 and executions(workdir, "book") == 1
