"""Compensation (R13): when a run fails, is cancelled or misses its deadline, what it did
is undone, most recently finished first, one compensation step at a time.

This is the runtime's, for every front-end: a driver only names which steps have an undo
task (`Driver.compensations`) and the undo task's policy. An undo is called as
`undo(output, *original args, **original kwargs)`, the task-call convention of
`driver.encode_call`.
"""

from __future__ import annotations

from ... import codec
from ...store.records import HeldStep, NewStep
from ..seam import encode_call
from .work import RunState, Work, keys


def compensate(w: Work, run: RunState, error: str) -> bool:
    """Start undoing a failed run; False if nothing needs undoing."""
    if run.driver is None:
        return False
    undo_tasks = run.driver.compensations()
    done = w.tx.compensable(run.id, list(undo_tasks)) if undo_tasks else []
    if not done:
        return False
    steps: list[NewStep] = []
    for i, d in enumerate(done):
        call = codec.loads(d["input"])
        text, checksum = encode_call([codec.loads(d["output"]), *call["args"]], call["kwargs"])
        policy = run.driver.policy(d["node"], "undo")
        steps.append(policy.new_step(f"compensate:{d['name']}", d["node"], "undo",
                                     "ready" if i == 0 else "pending", min(i, 1), text,
                                     checksum, i))
    w.tx.insert_steps(run.id, steps, keys(run.id, steps))
    w.tx.start_compensation(run.id, error, len(steps))
    w.made_ready += 1
    return True


def undo_ended(w: Work, run_id: str, held: HeldStep, succeeded: bool) -> None:
    """A compensation step ended: the next one starts, or the chain stops in front of an
    operator (`waypost retry|skip|fail RUN compensate:STEP`)."""
    w.undone[run_id] = w.undone.get(run_id, True) and succeeded
    if succeeded:
        w.tx.next_compensation(run_id, (held.map_index or 0) + 1)
    else:
        w.tx.set_run_status(run_id, "compensation_failed", ["compensating"])
