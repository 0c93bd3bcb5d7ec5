"""Signals: messages sent to one state-machine run, stored before `send` returns, then
offered (`Advancer.offer`).

A signal is a row before anything decides about it, so it is never lost and never taken
twice: it is offered to the run's driver when it arrives (if the sender can decide), after
every transition into a state that takes signals, and by the sweeper (for a sender that had
not the machine's guards). A driver takes it with a `Transition` or settles it with a
`Consume`; one it can do neither with now (an action is running) stays open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import InputError, UnknownTargetError
from ...registry import registry
from ...statuses import ACTIVE_RUNS
from ...store.protocol import Tx
from .advance import Advancer


def sweep(adv: Advancer, tx: Tx, limit: int = 100) -> int:
    """Offer signals left pending by a sender that could not decide them (it had not the
    machine's guards), those waiting for an action that has ended since, and the ends of
    visits left to be decided (`DecideLater`). Every worker does this for the definitions
    its code has (whoever holds the sweeper's lease may not have them)."""
    runs = tx.runs_with_pending_signals(sorted(set(registry.fingerprints().values())), limit)
    if runs:
        with adv.work(tx) as w:
            for run_id in runs:
                tx.lock_run(run_id)
                adv.offer(w, w.run(run_id))
    return 0  # offers are not expired attempts: they do not count toward a sweep


def send(adv: Advancer, tx: Tx, target: str, name: str, payload: str,
         event_id: str | None, address: Callable[[Tx, str], str] | None = None
         ) -> dict[str, Any]:
    """Store a signal for a machine run and offer it at once; a repeat of an event id
    stores nothing. Returns the signal's seq (as `event`, the name senders see), whether it
    is a repeat, and its status.

    `target` is tried as a run id first (one statement: the lock, which also reads where
    the machine is); `address`, if given, resolves a key or a prefix."""
    run_id, row = target, tx.lock_run(target)
    if row is None and address is not None:
        run_id = address(tx, target)
        row = tx.lock_run(run_id)
    if row is None:
        raise UnknownTargetError(f"no run {run_id}")
    with adv.work(tx) as w:
        w.machines[run_id] = (row["state"], row["data"], int(row["transitions"]))
        if row["status"] == "running":
            w.running.add(run_id)
        run = w.run(run_id)
        if run.driver is not None and not run.driver.takes_signals:
            raise InputError(f"run {run_id} is a {run.driver.kind} run: only state machines "
                             "take events")
        if row["status"] not in ACTIVE_RUNS:
            sent = None if event_id is None else tx.signal(run_id, None, event_id)
            if sent is not None:  # a repeat, after the run ended: still one signal
                return {"run_id": run_id, "event": sent["seq"], "duplicate": True,
                        "status": sent["status"], "state": sent["state"]}
            raise InputError(f"run {run_id} has ended ({row['status']}): the event "
                             f"{name!r} was not stored")
        seq, new = tx.add_signal(run_id, name, event_id, payload)
        if new:
            adv.offer(w, run)
    if seq in w.settled:
        status, state = w.settled[seq]
    elif new:  # offered and left open: waiting for an action, or for a worker to decide
        status, state = "pending", None
    else:
        stored = tx.signal(run_id, seq, None) or {"status": None, "state": None}
        status, state = stored["status"], stored["state"]
    return {"run_id": run_id, "event": seq, "duplicate": not new, "status": status,
            "state": state}
