"""A run's own state, for definitions that keep one (a machine's): its transitions and the
signals it settles, recorded in the deciding transaction.

A state moves only through `Tx.transition`, fenced by the run's transition count under
its row lock, and a signal is settled once (`Tx.settle_signal`: only while it is open).
"""

from __future__ import annotations

from ... import codec
from ..seam import DECIDE_EVENT, DecideLater, Transition
from . import event_waits
from .work import RunState, Work


def transition(run: RunState, d: Transition) -> None:
    w = run.work
    before, data, seq = run.machine()
    w.tx.transition(run.id, seq + 1, before, d.to, d.trigger, d.event_id, data, d.data)
    w.machines[run.id] = (d.to, d.data, seq + 1)
    event_waits.listen(run, data, d.data)
    if d.handles is not None:
        w.handled.add((run.id, d.handles))
    if d.event is not None:
        settle_signal(w, d.event, "consumed", before)
    if d.offers:
        w.offer.add(run.id)  # open signals are offered to the new state


def settle_signal(w: Work, seq: int, status: str, state: str | None) -> None:
    if w.tx.settle_signal(seq, status, state):
        w.settled[seq] = (status, state)


def decide_later(run: RunState, d: DecideLater) -> None:
    """Keep the end of a step whose consequences need user code this process lacks as a
    pending signal, which a worker that has the code is offered."""
    w = run.work
    payload = codec.dumps({"step": d.step, "kind": d.kind})
    seq, new = w.tx.add_signal(run.id, DECIDE_EVENT, f"decide:{d.step}", payload)
    if new and run.id in w.open_signals:
        w.open_signals[run.id].append((seq, DECIDE_EVENT, f"decide:{d.step}", payload, "pending"))
