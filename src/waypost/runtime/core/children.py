"""Child runs: a step (of any front-end) that started another run and waits for it.

The child is created in the transaction that decided to start it (`StartChild`), with an
id derived from its parent's and the step's, so a retried transaction finds it instead of
making a second. Its end, in whatever transaction it happens, ends the parent's step the
same way (through `end_wait`, fenced by `waiting`), which moves the parent on in that same
transaction. Ending a parent early ends its unfinished children; reopening the parent's
step reopens its child.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ... import codec
from ...statuses import ACTIVE_RUNS, REOPENABLE_RUNS
from ...store.protocol import Tx
from ..seam import StartChild
from .runs import create_run
from .work import RunState, Work


def start(run: RunState, d: StartChild) -> None:
    """The child run of `d.step`, created and started in this transaction; the step waits
    for it."""
    w, tx = run.work, run.work.tx
    child_id = hashlib.sha256(f"{run.id}/{d.step}".encode()).hexdigest()[:24]
    existing = tx.lock_run(child_id)
    if existing is not None:  # the step was reopened (resume, replay): so is its child
        tx.make_waiting(run.id, d.step, None)
        if existing["status"] == "succeeded":
            ended(w, child_id, existing["output"], None)
        elif existing["status"] in REOPENABLE_RUNS:
            w.reopen(child_id)
        return
    driver = w.heads.driver(tx, d.definition)
    params = codec.loads(d.input)
    tx.make_waiting(run.id, d.step, None)
    tx.mark_runs_running([run.id])
    create_run(w, child_id, d.name, d.definition, driver, params, d.input,
               driver.steps(params), parent=(run.id, d.step))


def ended(w: Work, run_id: str, output: str | None, error: dict[str, Any] | None) -> None:
    """A run ended: if a parent's step waits for it, that step ends the same way."""
    link = w.tx.parent_of(run_id)
    if link is None:
        return
    parent, name = link
    step = w.tx.step_named(parent, name)
    if step is None or step["status"] != "waiting":
        return  # the parent was cancelled (and cancelled it), or moved on
    if output is not None:
        held = w.tx.end_wait(step["id"], "waiting", "succeeded", output, None)
        if held is not None:
            w.step_ended(held, output)
        return
    text = codec.dumps({"type": "ChildFailed", "traceback": None, "child": run_id,
                        "message": f"child run {run_id} {error.get('status', 'failed')}: "
                                   f"{error.get('type')}: {error.get('message')}"
                        if error else f"child run {run_id} failed"})
    held = w.tx.end_wait(step["id"], "waiting", "failed", None, text)
    if held is not None:
        w.step_ended(held, error=text, succeeded=False)


def unfinished(tx: Tx, run_id: str) -> list[str]:
    """The children of a run that have not ended (to end with it, when it ends early)."""
    return [str(c["id"]) for c in tx.children_of(run_id) if c["status"] in ACTIVE_RUNS]
