"""`isolation="process"` (both stores): the body runs in a child process that is killed on a
missed heartbeat, a timeout, a cancellation or a worker shutdown, freeing its slot; input,
output, heartbeats and errors cross as JSON. Also R15's default heartbeat interval.

The tasks live at module level because the child process imports this module to find them.
Most tests serve with `concurrency=1`: a retry can only run once the stuck child is gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import waypost as wp
from waypost.runtime.process.sweeper import process_gone
from waypost.vocabulary.context import DEFAULT_HEARTBEAT

from .helpers import result_of, step_of, ts

# Generous, because a retry must start a fresh interpreter within them on a loaded machine.
BEAT = 1.0
TIMEOUT = 2.0
RETRY = wp.Backoff(initial=0.05, jitter=False)


def _wait_file(path: Path, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.02)
    return path.read_text()


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _block_forever(pidfile: str) -> None:
    Path(pidfile).write_text(str(os.getpid()))
    time.sleep(1000)


# -- killed and retried ---------------------------------------------------------------------


@wp.task(isolation="process", heartbeat=BEAT, retries=1, backoff=RETRY)
def silent_once(pidfile: str, ctx: wp.Context) -> int:
    if ctx.attempt == 1:
        _block_forever(pidfile)  # never beats
    return os.getpid()


@wp.flow()
def silent_flow(pidfile: str) -> int:
    return silent_once(pidfile)


@wp.task(isolation="process", timeout=TIMEOUT, retries=1, backoff=RETRY)
def slow_once(pidfile: str, ctx: wp.Context) -> int:
    if ctx.attempt == 1:
        _block_forever(pidfile)
    return os.getpid()


@wp.flow()
def slow_flow(pidfile: str) -> int:
    return slow_once(pidfile)


def test_a_stuck_task_that_never_beats_is_killed_and_retried(engine: wp.Engine,
                                                             tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    run_id = engine.start(silent_flow, {"pidfile": str(pidfile)})
    with engine.serving(concurrency=1) as worker:
        first = int(_wait_file(pidfile))
        output = result_of(engine, worker, run_id, timeout=30)
    assert output not in (first, os.getpid()), "each attempt runs in a process of its own"
    assert _wait_gone(first), f"the stuck child {first} is still alive"
    step = step_of(engine.show(run_id), "silent_once")
    assert step["attempts"] == 2
    (lost,) = step["history"]
    assert lost["outcome"] == "heartbeat"
    assert lost["error"]["type"] == "HeartbeatTimeout"
    # retried within 3 intervals of the last sign of life (the claim), plus the sweeper's
    # and the lease renewal's periods and a generous margin for a loaded machine
    assert ts(step["started_at"]) - ts(lost["started_at"]) < 3 * BEAT + 10


def test_a_timed_out_process_task_is_killed_and_frees_its_slot(engine: wp.Engine,
                                                               tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    run_id = engine.start(slow_flow, {"pidfile": str(pidfile)})
    with engine.serving(concurrency=1) as worker:
        first = int(_wait_file(pidfile))
        output = result_of(engine, worker, run_id, timeout=30)
    assert output != first
    assert _wait_gone(first), f"the timed-out child {first} is still alive"
    step = step_of(engine.show(run_id), "slow_once")
    assert [h["outcome"] for h in step["history"]] == ["timeout"]
    assert step["history"][0]["error"]["type"] == "TimeoutError"


# -- cancellation and shutdown ------------------------------------------------------------------


@wp.task(isolation="process")
def waits(pidfile: str, marker: str, ctx: wp.Context) -> str:
    try:
        _block_forever(pidfile)
    except wp.Cancelled:
        Path(marker).write_text(f"cancelled={ctx.cancelled}")
        raise
    return "never"


@wp.flow()
def wait_flow(pidfile: str, marker: str) -> str:
    return waits(pidfile, marker)


def test_cancel_stops_the_child_which_sees_cancelled(engine: wp.Engine, tmp_path: Path) -> None:
    pidfile, marker = tmp_path / "pid", tmp_path / "marker"
    run_id = engine.start(wait_flow, {"pidfile": str(pidfile), "marker": str(marker)})
    with engine.serving(concurrency=1, lease=1.5):
        child = int(_wait_file(pidfile))
        engine.cancel(run_id)
        # the blocking call was interrupted by wp.Cancelled, with ctx.cancelled set
        assert _wait_file(marker) == "cancelled=True"
        assert _wait_gone(child), f"the cancelled child {child} is still alive"
    view = engine.show(run_id)
    assert view["status"] == "cancelled"
    step = step_of(view, "waits")
    assert step["status"] == "cancelled" and step["output"] is None


def test_a_stopping_worker_kills_the_child_and_gives_the_step_back(engine: wp.Engine,
                                                                    tmp_path: Path) -> None:
    pidfile, marker = tmp_path / "pid", tmp_path / "marker"
    run_id = engine.start(wait_flow, {"pidfile": str(pidfile), "marker": str(marker)})
    worker = engine.worker(concurrency=1)
    worker.start()
    try:
        child = int(_wait_file(pidfile))
    finally:
        worker.stop(grace=0.2)
    assert process_gone(child), "stop() returned while the child still ran"
    step = step_of(engine.show(run_id), "waits")
    assert step["status"] == "ready" and step["attempts"] == 1, step
    assert [h["outcome"] for h in step["history"]] == ["released"], "kept, not charged"


# -- what crosses the process boundary ----------------------------------------------------------


@wp.task(isolation="process", heartbeat=1.0)
def counts(n: int, items: dict[str, Any], ctx: wp.Context) -> dict[str, Any]:
    for i in range(n):
        ctx.heartbeat({"done": i + 1, "of": n})
        time.sleep(0.1)
    return {"pid": os.getpid(), "items": items, "key": ctx.idempotency_key,
            "cancelled": ctx.cancelled}


@wp.flow()
def count_flow(n: int, items: dict[str, Any]) -> dict[str, Any]:
    return counts(n, items)


def test_input_output_and_heartbeats_cross_as_json(engine: wp.Engine) -> None:
    items = {"a": [1, 2.5, None, True], "ü": "ß"}
    run_id = engine.start(count_flow, {"n": 12, "items": items})
    details = []
    with engine.serving(lease=1.5) as worker:
        deadline = time.monotonic() + 30
        while engine.status(run_id) not in ("succeeded", "failed"):
            step = step_of(engine.show(run_id), "counts")
            if step["status"] == "running" and step["heartbeat_details"] is not None:
                details.append(step["heartbeat_details"])
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.03)
        output = result_of(engine, worker, run_id)
    step = step_of(engine.show(run_id), "counts")
    assert output["pid"] != os.getpid()
    assert output["items"] == items
    assert output["key"] == step["idempotency_key"]
    assert output["cancelled"] is False
    assert details and all(d["of"] == 12 for d in details), details


@wp.task(isolation="process", retries=1, backoff=RETRY)
def raises_once(ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        raise ValueError("bad input 7")
    return "ok"


@wp.task(isolation="process", retries=3, backoff=RETRY)
def refuses() -> str:
    raise wp.Fatal("card declined")


@wp.task(isolation="process", retries=3, backoff=RETRY)
def returns_a_set() -> Any:
    return {1, 2}


@wp.flow()
def error_flow() -> list[str]:
    return [raises_once(), refuses(), returns_a_set()]


def test_errors_are_reported_like_thread_errors(engine: wp.Engine) -> None:
    run_id = engine.start(error_flow, {})
    with engine.serving() as worker, pytest.raises(wp.RunFailed):
        result_of(engine, worker, run_id)
    view = engine.show(run_id)
    retried = step_of(view, "raises_once")
    assert retried["status"] == "succeeded" and retried["attempts"] == 2
    (failed,) = retried["history"]
    assert failed["outcome"] == "failed"
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "bad input 7"
    assert 'raise ValueError("bad input 7")' in failed["error"]["traceback"]
    assert "runtime/isolation.py" not in failed["error"]["traceback"], "starts at the user's code"
    fatal = step_of(view, "refuses")
    assert fatal["status"] == "failed" and fatal["attempts"] == 1
    assert fatal["error"]["type"] == "Fatal" and fatal["error"]["message"] == "card declined"
    not_json = step_of(view, "returns_a_set")
    assert not_json["status"] == "failed" and not_json["attempts"] == 1
    assert "not JSON" in not_json["error"]["message"]


@wp.task(isolation="process", retries=2, backoff=RETRY)
def dies_twice(ctx: wp.Context) -> int:
    if ctx.attempt == 1:
        os._exit(3)
    if ctx.attempt == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
    return ctx.attempt


@wp.flow()
def die_flow() -> int:
    return dies_twice()


def test_a_child_that_dies_is_a_failed_attempt_and_retried(engine: wp.Engine) -> None:
    run_id = engine.start(die_flow, {})
    with engine.serving() as worker:
        assert result_of(engine, worker, run_id) == 3
    step = step_of(engine.show(run_id), "dies_twice")
    exited, killed = step["history"]
    assert exited["outcome"] == killed["outcome"] == "failed"
    assert exited["error"]["type"] == killed["error"]["type"] == "ProcessDied"
    assert "exited with code 3" in exited["error"]["message"]
    assert "killed by signal 9 (SIGKILL)" in killed["error"]["message"]


@wp.task(isolation="process", timeout=TIMEOUT, retries=1, backoff=RETRY)
async def async_slow_once(marker: str, ctx: wp.Context) -> list[int]:
    if ctx.attempt == 1:
        try:
            await asyncio.sleep(1000)
        except asyncio.CancelledError:
            Path(marker).write_text(f"coroutine cancelled in {os.getpid()}")
            raise
    await asyncio.sleep(0.01)
    return [os.getpid(), ctx.attempt]


@wp.flow()
def async_flow(marker: str) -> list[int]:
    return async_slow_once(marker)


def test_an_async_task_runs_on_an_event_loop_in_its_process(engine: wp.Engine,
                                                            tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    run_id = engine.start(async_flow, {"marker": str(marker)})
    with engine.serving(concurrency=1) as worker:
        pid, attempt = result_of(engine, worker, run_id)
    assert pid != os.getpid() and attempt == 2
    text = _wait_file(marker)
    assert text.startswith("coroutine cancelled in ")
    assert _wait_gone(int(text.rsplit(" ", 1)[1]))


# -- definitions -----------------------------------------------------------------------------------


def test_isolation_must_be_thread_or_process() -> None:
    with pytest.raises(wp.DefinitionError, match="isolation must be 'thread' or 'process'"):
        wp.task(isolation="fork")(lambda: None)
    assert "isolation" not in wp.task()(_block_forever).options(), "the default changes no graph"


def test_a_process_task_must_be_importable() -> None:
    with pytest.raises(wp.DefinitionError, match="module level"):
        @wp.task(isolation="process")
        def local() -> None: ...


# -- R15: a task that beats without declaring an interval gets the default -------------------------


def _beat_then(go: str, ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        ctx.heartbeat("first attempt")
        deadline = time.monotonic() + 20
        while not Path(go).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise RuntimeError("fail once, after the beat was seen")
    return "second attempt never beat"


@wp.task(retries=1, backoff=RETRY)
def undeclared(go: str, ctx: wp.Context) -> str:
    return _beat_then(go, ctx)


@wp.task(retries=1, backoff=RETRY, isolation="process")
def undeclared_isolated(go: str, ctx: wp.Context) -> str:
    return _beat_then(go, ctx)


@wp.task()
def never_beats() -> str:
    return "quiet"


@wp.flow()
def undeclared_flow(go: str) -> list[str]:
    return [undeclared(go), never_beats()]


@wp.flow()
def undeclared_isolated_flow(go: str) -> str:
    return undeclared_isolated(go)


@pytest.mark.parametrize("isolated", [False, True], ids=["thread", "process"])
def test_a_beat_without_a_declared_interval_is_held_to_the_default(
        engine: wp.Engine, tmp_path: Path, isolated: bool) -> None:
    go = tmp_path / "go"
    flow, name = ((undeclared_isolated_flow, "undeclared_isolated") if isolated
                  else (undeclared_flow, "undeclared"))
    run_id = engine.start(flow, {"go": str(go)})
    with engine.serving(lease=1.5) as worker:
        deadline = time.monotonic() + 20
        while True:
            step = step_of(engine.show(run_id), name)
            if step["heartbeat_details"] == "first attempt":
                break
            assert time.monotonic() < deadline, f"the beat never reached the store: {step}"
            time.sleep(0.02)
        assert step["heartbeat"] == DEFAULT_HEARTBEAT == 30.0
        assert step["status"] == "running" and not step["suspicious"]
        go.write_text("go")
        result_of(engine, worker, run_id)
    view = engine.show(run_id)
    step = step_of(view, name)
    # the default held only for the attempt that beat: the retry, which never beat, is not
    # monitored
    assert step["attempts"] == 2 and step["heartbeat"] is None
    if not isolated:
        assert step_of(view, "never_beats")["heartbeat"] is None


# -- a task defined in the script that runs the worker ---------------------------------------------

SCRIPT = '''
import os, sys
import waypost as wp

@wp.task(isolation="process")
def where(x: int) -> list:
    return [os.getpid(), x]

@wp.flow()
def script_flow(x: int) -> list:
    return where(x)

{body}
'''
RUN = '''
engine = wp.Engine(sys.argv[1], poll=0.05)
try:
    print(engine.run(script_flow, {"x": 5}, timeout=30))
except wp.RunFailed as exc:
    print(exc)
engine.close()
'''


def _run_script(tmp_path: Path, db_url: str, body: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(body=body))
    done = subprocess.run([sys.executable, str(script), db_url], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_task_defined_in_the_main_script_runs_in_its_process(db_url: str,
                                                                tmp_path: Path) -> None:
    guarded = "if __name__ == '__main__':\n" + "".join(f"    {line}\n"
                                                       for line in RUN.strip().splitlines())
    pid, x = json.loads(_run_script(tmp_path, db_url, guarded))
    assert x == 5 and pid > 0


def test_a_main_script_that_serves_without_a_guard_fails_the_step(db_url: str,
                                                                   tmp_path: Path) -> None:
    # the child runs the script to find the task: it must not start a worker of its own
    output = _run_script(tmp_path, db_url, RUN)
    assert "if __name__ ==" in output, output
