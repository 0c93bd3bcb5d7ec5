"""Stop requests to a worker only ever shorten its grace (both stores). The CLI's second
Ctrl-C can interrupt the handler of the first: whichever request lands last, a grace of
zero already asked for stays zero, and the reason recorded is the one that cut the
attempt short."""

from __future__ import annotations

import time
from pathlib import Path

import waypost as wp

from .helpers import step_of


@wp.task()
def waits_for_file(path: str) -> str:
    deadline = time.monotonic() + 60
    while Path(path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return "done"


@wp.flow()
def waiting(path: str) -> str:
    return waits_for_file(path)


def test_a_later_longer_grace_does_not_undo_a_stop_now(engine: wp.Engine,
                                                       tmp_path: Path) -> None:
    gate = tmp_path / "hold"
    gate.write_text("")
    run_id = engine.start(waiting, {"path": str(gate)})
    worker = engine.worker(lease=60.0)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while step_of(engine.show(run_id), "waits_for_file")["status"] != "running":
            assert time.monotonic() < deadline, "the worker never claimed the step"
            time.sleep(0.05)
        worker.request_stop(0.0, "stop now")
        worker.request_stop(120.0, "the first request, handled last")
        deadline = time.monotonic() + 15
        while (step := step_of(engine.show(run_id), "waits_for_file"))["status"] != "ready":
            assert time.monotonic() < deadline, "the 120 s grace undid the stop now"
            time.sleep(0.05)
    finally:
        gate.unlink()
        worker.stop()
    (released,) = step["history"]
    assert released["outcome"] == "released" and "stop now" in released["error"]["message"]
