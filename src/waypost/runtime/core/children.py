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
from typing import TYPE_CHECKING, Any

from ... import codec
from ...store.protocol import Tx
from ..seam import StartChild, Started
from .signals import OPEN
from .work import RunState, Work, keys

if TYPE_CHECKING:
    from .advance import Advancer


def start(adv: Advancer, run: RunState, d: StartChild) -> None:
    """The child run of `d.step`, created and started in this transaction; the step waits
    for it."""
    w, tx = run.work, run.work.tx
    child_id = hashlib.sha256(f"{run.id}/{d.step}".encode()).hexdigest()[:24]
    existing = tx.lock_run(child_id)
    if existing is not None:  # the step was reopened (resume, replay): so is its child
        tx.make_waiting(run.id, d.step, None)
        if existing["status"] == "succeeded":
            ended(adv, w, child_id, existing["output"], None)
        elif existing["status"] in ("failed", "cancelled"):
            from .reopen import resume  # reopen builds on advance, which imports this

            resume(adv, tx, child_id)
        return
    driver = adv.driver(tx, d.definition)
    params = codec.loads(d.input)
    steps = driver.steps(params)
    tx.insert_run(child_id, d.name, d.definition, None, d.input, codec.checksum(d.input),
                  len(steps))
    tx.link_child(child_id, run.id, d.step)
    tx.insert_steps(child_id, steps, keys(child_id, steps))
    w.made_ready += sum(s.status == "ready" for s in steps)
    adv.remember(child_id, (d.definition, d.input, run.id, None))
    child = w.runs[child_id] = RunState(child_id, driver, params, w)
    adv.decide(child, Started())
    tx.make_waiting(run.id, d.step, None)
    tx.mark_runs_running([run.id])


def ended(adv: Advancer, w: Work, run_id: str, output: str | None,
          error: dict[str, Any] | None) -> None:
    """A run ended: if a parent's step waits for it, that step ends the same way."""
    if not adv.may_have_parent(run_id):
        return
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
            adv.succeeded(w, held, output)
        return
    text = codec.dumps({"type": "ChildFailed", "traceback": None, "child": run_id,
                        "message": f"child run {run_id} {error.get('status', 'failed')}: "
                                   f"{error.get('type')}: {error.get('message')}"
                        if error else f"child run {run_id} failed"})
    held = w.tx.end_wait(step["id"], "waiting", "failed", None, text)
    if held is not None:
        w.open_delta[parent] -= 1
        adv.after_end(w, w.run(parent), held, succeeded=False, error=text)


def abort(adv: Advancer, tx: Tx, run_id: str, message: str) -> None:
    """End the unfinished children of a run that ended early."""
    for child in tx.children_of(run_id):
        if child["status"] in OPEN:
            adv.abort(tx, child["id"], "cancelled", "Cancelled", message, quiet=True)
