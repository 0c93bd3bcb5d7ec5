"""The `waypost` command as a user runs it: real processes, on both stores."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import waypost as wp
from tests.flows import behaviour as flows
from tests.integration.helpers import join_listeners

ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.flows.behaviour"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYPOST_DB", "FORCE_COLOR")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def waypost(*args: str, db: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "waypost.cli", *(["--db", db] if db else []), *args]
    return subprocess.run(cmd, cwd=ROOT, env=env or _env(), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """The command failed with exactly one clear line on stderr and nothing on stdout."""
    assert proc.returncode != 0, f"expected a failure, got exit 0: {proc.stdout}"
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{proc.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    return lines[0]


def runs_in(url: str) -> list[dict[str, Any]]:
    with wp.Engine(url) as engine:
        return engine.runs()


class WorkerProcess:
    def __init__(self, url: str, log: Path) -> None:
        self.log = log
        self._err = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "waypost.cli", "--db", url, "worker", MODULE,
             "--poll", "0.05", "--grace", "5"],
            cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._err)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._err.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def worker(db_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(db_url, tmp_path / "worker.err")
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def engine(db_url: str) -> Iterator[wp.Engine]:
    with wp.Engine(db_url, poll=0.05) as eng:
        yield eng
    join_listeners()


@pytest.fixture
def workdir(tmp_path: Path) -> str:
    path = tmp_path / "work"
    path.mkdir()
    return str(path)


def _result(engine: wp.Engine, run_id: str, worker: WorkerProcess) -> Any:
    try:
        return engine.result(run_id, timeout=30)
    except wp.ResultTimeout:
        pytest.fail(f"run {run_id} did not finish; worker log:\n{worker.output()}")


def _is_iso(value: str | None) -> bool:
    if value is None or not ISO.match(value):
        return False
    return datetime.fromisoformat(value).tzinfo is not None


# -- the happy path ------------------------------------------------------------------------
def test_check_graph_and_a_start_that_check_refuses(db_url: str) -> None:
    clean = waypost("check", "examples/payments.py")
    assert ok(clean).strip().endswith("2 definitions checked: 0 errors, 0 warnings")
    broken = waypost("check", "tests.flows.unchecked")
    assert broken.returncode == 1
    assert "error: tests.flows.unchecked:cleanup [drop_table]: destructive step" in broken.stdout
    graph = ok(waypost("graph", "examples/payments.py:Payment"))
    assert graph.startswith("stateDiagram-v2\n    [*] --> charging\n")
    refused = one_error_line(waypost("start", "tests.flows.unchecked:cleanup", "--input",
                                     '{"name": "t"}', db=db_url), 2)
    assert "destructive step" in refused and "nothing was started" in refused
    assert runs_in(db_url) == []
    assert "defines no flow or machine" in one_error_line(waypost("check", "tests"), 2)


def test_an_event_sent_from_the_cli_is_decided_by_a_worker_that_has_the_guards(
        db_url: str, engine: wp.Engine, worker: WorkerProcess) -> None:
    run_id = ok(waypost("start", f"{MODULE}:Approval", "--key", "loan-42", db=db_url)).strip()
    sent = json.loads(ok(waypost("send", "loan-42", "decided", "--payload", '{"ok": true}',
                                 "--id", "d1", "--json", db=db_url)))
    assert (sent["run_id"], sent["status"], sent["duplicate"]) == (run_id, "pending", False)
    assert _result(engine, run_id, worker) == {"ok": True}
    again = ok(waypost("send", "loan-42", "decided", "--id", "d1", db=db_url))
    assert "sent before: nothing new stored" in again
    assert "has ended (succeeded)" in one_error_line(
        waypost("send", "loan-42", "decided", "--id", "d2", db=db_url))
    assert "is not valid JSON" in one_error_line(
        waypost("send", run_id, "decided", "--payload", "{", db=db_url))
    view = engine.show(run_id)
    assert [(e["name"], e["status"], e["event_id"]) for e in view["events"]] == [
        ("decided", "consumed", "d1")]


def test_a_skip_from_the_cli_is_decided_by_a_worker_that_has_the_guards(
        db_url: str, engine: wp.Engine, worker: WorkerProcess) -> None:
    """The shell ends the step but cannot run the guard on what follows: the run does not
    fail for it; the decision waits, visible, and a worker with the class makes it."""
    run_id = ok(waypost("start", f"{MODULE}:Escalated", "--input", "{}", db=db_url)).strip()
    deadline = time.monotonic() + 30
    while engine.show(run_id)["status"] != "needs_attention":
        assert time.monotonic() < deadline, worker.output()
        time.sleep(0.05)
    worker.stop()  # the decision must wait for a worker, not be made by the shell
    ok(waypost("skip", run_id, "charging#1", "--output", '{"ok": true}', "--by", "ops",
               db=db_url))
    view = engine.show(run_id)
    assert (view["status"], view["state"]) == ("running", "charging"), view["error"]
    assert [(e["name"], e["status"]) for e in view["events"]] == [
        ("waypost.decide", "pending")]
    assert "waypost." in one_error_line(waypost("send", run_id, "waypost.decide", db=db_url))
    again = WorkerProcess(db_url, worker.log.with_suffix(".2"))
    try:
        assert _result(engine, run_id, again) == {"ok": True}
    finally:
        again.stop()
    view = engine.show(run_id)
    assert [(t["from"], t["to"], t["trigger"]) for t in view["transitions"]][-1] == (
        "charging", "paid", "done")
    assert [(e["name"], e["status"]) for e in view["events"]] == [
        ("waypost.decide", "consumed")]


def test_a_machine_started_from_the_cli_runs_in_a_worker_and_shows_its_history(
        db_url: str, engine: wp.Engine, worker: WorkerProcess) -> None:
    run_id = ok(waypost("start", f"{MODULE}:Ticker", "--input", "{}", db=db_url)).strip()
    assert _result(engine, run_id, worker) == {"ticks": 2}
    text = ok(waypost("show", run_id, db=db_url))
    assert "state done" in text
    assert "ticking → ticking  (done)" in text and "ticking → done  (done)" in text
    view = json.loads(ok(waypost("show", run_id, "--json", db=db_url)))
    assert (view["kind"], view["state"], view["data"]) == ("machine", "done", {"ticks": 2})
    assert [t["to"] for t in view["transitions"]] == ["ticking", "ticking", "done"]
    assert [s["name"] for s in view["steps"]] == ["ticking#1", "ticking#2"]


def test_start_worker_show_round_trip(db_url: str, engine: wp.Engine, worker: WorkerProcess,
                                      workdir: str):
    params = {"workdir": workdir, "failures": 1}
    started = ok(waypost("start", f"{MODULE}:flaky_flow", "--input", json.dumps(params),
                         db=db_url))
    assert started.count("\n") == 1
    run_id = started.strip()
    assert re.fullmatch(r"[0-9a-f]{24}", run_id), started
    assert _result(engine, run_id, worker) == "ok on attempt 2"

    view = json.loads(ok(waypost("show", run_id, "--json", db=db_url)))
    for field in ("id", "flow", "status", "input", "output", "error", "steps"):
        assert field in view, field
    assert view["id"] == run_id
    assert view["flow"] == flows.flaky_flow.name == f"{MODULE}:flaky_flow"
    assert (view["status"], view["input"], view["output"], view["error"]) == (
        "succeeded", params, "ok on attempt 2", None)
    # The definition a CLI process stored is the one this process builds.
    assert view["definition"] == flows.flaky_flow.graph.fingerprint()
    assert view["fingerprint"] == view["definition"]  # the same, by a name that says what
    for field in ("created_at", "started_at", "finished_at"):
        assert _is_iso(view[field]), (field, view[field])

    [step] = view["steps"]
    for field in ("name", "status", "attempts", "idempotency_key", "input", "input_checksum",
                  "output", "error", "started_at", "finished_at", "history"):
        assert field in step, field
    assert step["name"] == "flaky"
    assert step["status"] == "succeeded"
    assert type(step["attempts"]) is int
    assert step["attempts"] == 2
    assert step["input"] == {"args": [workdir, 1], "kwargs": {}}
    assert step["input_checksum"].startswith("sha256:")
    assert isinstance(step["idempotency_key"], str) and step["idempotency_key"]
    assert step["output"] == "ok on attempt 2"
    assert step["error"] is None
    assert _is_iso(step["started_at"]) and _is_iso(step["finished_at"])
    [failed] = step["history"]
    for field in ("attempt", "outcome", "error", "started_at", "finished_at"):
        assert field in failed, field
    assert (failed["attempt"], failed["outcome"]) == (1, "failed")
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "flaky failure number 1"
    assert "Traceback" in failed["error"]["traceback"]
    assert _is_iso(failed["started_at"]) and _is_iso(failed["finished_at"])
    assert view == engine.show(run_id)

    # The human view, by an unambiguous prefix of the id.
    human = ok(waypost("show", run_id[:18], db=db_url))
    assert run_id in human and "flaky" in human and "succeeded" in human
    assert "flaky failure number 1" in human

    assert worker.stop() == 0
    assert "stopped" in worker.output()


def test_runs_lists_and_filters(db_url: str, engine: wp.Engine, workdir: str):
    with engine.serving():
        good = engine.start(flows.adder, {"a": 1}, key="listed")
        bad = engine.start(flows.fatal_flow, {"workdir": workdir})
        assert engine.result(good, timeout=30) == 3
        with pytest.raises(wp.RunFailed):
            engine.result(bad, timeout=30)

    def listed(*args: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in ok(waypost("runs", "--json", *args, db=db_url))
                .splitlines()]

    assert {r["id"] for r in listed()} == {good, bad}
    assert [r["id"] for r in listed("--status", "failed")] == [bad]
    assert [r["id"] for r in listed("--status", "succeeded")] == [good]
    assert [r["id"] for r in listed("--flow", "adder")] == [good]
    assert [r["id"] for r in listed("--flow", f"{MODULE}:fatal_flow")] == [bad]
    assert [r["id"] for r in listed("--definition", "adder")] == [good]  # --flow's new name
    assert [r["id"] for r in listed("--definition", f"{MODULE}:fatal_flow")] == [bad]
    assert listed("--status", "running") == []
    (row,) = listed("--status", "succeeded")
    assert (row["steps_succeeded"], row["steps_total"]) == (1, 1)


def test_runs_table_keeps_values_whole_when_piped(db_url: str, engine: wp.Engine):
    """`waypost runs | grep KEY` must work: a cell is never broken across lines."""
    key = "order-2024-000123"
    with engine.serving():
        run_id = engine.start(flows.adder, {"a": 1}, key=key)
        assert engine.result(run_id, timeout=30) == 3
    table = ok(waypost("runs", db=db_url))
    [row] = [line for line in table.splitlines() if run_id in line]
    assert key in row, table
    assert flows.adder.name in row or "adder" in row, table
    assert "succeeded" in row, table


def test_database_from_the_environment(db_url: str):
    run_id = ok(waypost("start", f"{MODULE}:adder", "--input", '{"a": 4}',
                        env=_env(WAYPOST_DB=db_url))).strip()
    assert [r["id"] for r in runs_in(db_url)] == [run_id]


# -- bad input: one clear line, nothing written -------------------------------------------
@pytest.mark.parametrize(("target", "data", "needle"), [
    ("adder", '{"a": 1', "not valid JSON"),
    ("adder", "not json at all", "not valid JSON"),
    ("adder", "[1, 2]", "JSON object"),
    ("adder", "{}", "'a'"),
    ("adder", '{"a": 1, "c": 3}', "'c'"),
    ("adder", '{"a": "one"}', "'a' expects int"),
    ("adder", '{"a": true}', "'a' expects int"),
    ("no_such_flow", '{"a": 1}', "no_such_flow"),
    ("add", '{"a": 1}', "no flow 'add'"),  # a task, not a flow
], ids=["truncated-json", "not-json", "json-list", "missing", "unknown", "wrong-type",
        "bool-for-int", "unknown-flow", "task-not-flow"])
def test_start_refuses_bad_input(db_url: str, target: str, data: str, needle: str):
    line = one_error_line(waypost("start", f"{MODULE}:{target}", "--input", data, db=db_url),
                          code=2)
    assert needle in line
    assert runs_in(db_url) == []


@pytest.mark.parametrize(("target", "needle"), [
    ("no_such_module_xyz:flow", "no_such_module_xyz"),
    ("tests.flows.no_such_module:flow", "no_such_module"),
    (MODULE, "MODULE:FLOW"),
    (f"{MODULE}:", "MODULE:FLOW"),
])
def test_start_refuses_an_unknown_target(db_url: str, target: str, needle: str):
    line = one_error_line(waypost("start", target, "--input", '{"a": 1}', db=db_url), code=2)
    assert needle in line
    assert runs_in(db_url) == []


BAD_URLS = [
    "postgresql://postgres@127.0.0.1:1/x",
    "postgresql://postgres@127.0.0.1:5432/no_such_database_xyz",
    "sqlite:////nonexistent-dir/x.db",
    "mysql://localhost/x",
]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", [
    ("start", f"{MODULE}:adder", "--input", '{"a": 1}'),
    ("runs",),
    ("worker", MODULE),
    ("show", "0123"),
    ("resume", "0123"),
], ids=lambda c: c[0])
def test_an_unreachable_database_is_one_clear_line(url: str, command: tuple[str, ...]):
    line = one_error_line(waypost(*command, db=url, timeout=30), code=4)
    assert "127.0.0.1:1" in line or "no_such_database_xyz" in line or (
        "nonexistent-dir" in line) or "mysql" in line, line
    assert not Path("/nonexistent-dir").exists()


def test_an_unreachable_database_from_the_environment():
    proc = waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}',
                   env=_env(WAYPOST_DB=BAD_URLS[0]), timeout=30)
    assert "127.0.0.1:1" in one_error_line(proc, code=4)


def test_idempotency_key_from_the_command_line(db_url: str):
    def start(data: str) -> subprocess.CompletedProcess[str]:
        return waypost("start", f"{MODULE}:adder", "--input", data, "--key", "order-42",
                       db=db_url)

    first = ok(start('{"a": 1, "b": 2}')).strip()
    assert ok(start('{"a": 1, "b": 2}')).strip() == first
    assert ok(start('{"b": 2, "a": 1}')).strip() == first
    line = one_error_line(start('{"a": 1, "b": 3}'), code=3)
    assert "order-42" in line
    assert first in line
    assert [r["id"] for r in runs_in(db_url)] == [first]


def test_unknown_run(db_url: str):
    runs_in(db_url)  # an existing, empty store
    for command in (("show", "ffffffff"), ("show", "ffffffff", "--json"),
                    ("resume", "ffffffff")):
        assert "ffffffff" in one_error_line(waypost(*command, db=db_url), code=2)


def test_worker_of_an_unknown_module(db_url: str):
    line = one_error_line(waypost("worker", "no_such_module_xyz", db=db_url), code=2)
    assert "no_such_module_xyz" in line
    line = one_error_line(waypost("worker", "json", db=db_url), code=2)
    assert "no task" in line


# -- resume --------------------------------------------------------------------------------
def test_resume_a_failed_run(db_url: str, engine: wp.Engine, worker: WorkerProcess,
                             workdir: str):
    run_id = ok(waypost("start", f"{MODULE}:fixable", "--input",
                        json.dumps({"workdir": workdir}), db=db_url)).strip()
    with pytest.raises(wp.RunFailed, match="the fix is not deployed yet"):
        _result(engine, run_id, worker)
    assert engine.status(run_id) == "failed"

    flows.apply_fix(workdir)
    out = ok(waypost("resume", run_id, db=db_url))
    assert run_id in out and "resumed" in out and "2 steps" in out
    assert _result(engine, run_id, worker) == {"result": 42, "side": "side done"}
    assert [flows.executions(workdir, n) for n in ("fetch", "gated", "finish", "side")] == [
        1, 2, 1, 1]

    view = json.loads(ok(waypost("show", run_id, "--json", db=db_url)))
    assert view["status"] == "succeeded"
    assert {s["name"]: s["attempts"] for s in view["steps"]} == {
        "fetch": 1, "gated": 2, "finish": 1, "side": 1}

    # A run that did not fail cannot be resumed.
    line = one_error_line(waypost("resume", run_id, db=db_url), code=2)
    assert "only a failed run can resume" in line


class Drift(wp.Machine):
    """The definition this process has; the worker below runs other code of one name."""

    name = "tests.drift"
    initial = "waiting"
    waiting = wp.State(on={"go": "done"})
    done = wp.Final()


DRIFTED = '''
import waypost as wp


@wp.task(timeout=5)
def noop(data: dict) -> None:
    return None


class Drift(wp.Machine):
    name = "tests.drift"
    initial = "waiting"
    waiting = wp.State(on={"go": "working"})
    working = wp.State(noop, done="done")
    done = wp.Final()
'''


def test_show_says_when_a_live_worker_has_other_code_for_the_machine(
        db_url: str, engine: wp.Engine, tmp_path: Path) -> None:
    (tmp_path / "drifted.py").write_text(DRIFTED)
    run_id = engine.start(Drift, {})
    proc = subprocess.Popen([sys.executable, "-m", "waypost.cli", "--db", db_url, "worker",
                             "drifted.py", "--poll", "0.05"], cwd=tmp_path, env=_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (view := engine.show(run_id))["code_differs"]:
            assert time.monotonic() < deadline, "the worker never registered"
            time.sleep(0.1)
        [other] = view["code_differs"]
        assert other["worker"].endswith(f":{proc.pid}:") or str(proc.pid) in other["worker"]
        assert other["fingerprint"] != view["definition"]
        text = ok(waypost("show", run_id, db=db_url))
        assert "has another definition of this machine" in text
        assert engine.send(run_id, "go")["status"] == "consumed", "the run keeps its own"
        assert engine.result(run_id, timeout=10) == {}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
