"""The sweeper: gives back steps whose worker stopped answering.

It runs inside every worker, but only the holder of the `sweeper` lease row acts, so
many workers do not race over the same expired rows. Expiry is judged by the database's
clock in SQL, never by a worker's. Re-queued attempts go through the same advance as a
worker's report (retry policy, dead letter, blocking), fenced by the expired lease token.

A worker on this host whose process no longer exists (kill -9) need not wait out its
lease: its leases are expired at once, which is what makes restarts after a crash fast.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from ..store.protocol import Tx
from .advance import Advancer
from .interventions import sweep_waits
from .limits import WINDOW_MARGIN
from .outcome import Outcome

HOST = socket.gethostname()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def sweep(tx: Tx, advancer: Advancer, me: str, lease: float, batch: int = 200) -> int:
    """One pass; returns how many expired attempts were handled.

    The dead-process check comes before the election: after a kill -9 the dead worker
    usually still holds the sweeper lease, and nobody should wait for it to run out."""
    for worker_id, pid in tx.workers_on(HOST):
        if worker_id != me and process_gone(pid):
            tx.expire_owner(worker_id)
            tx.remove_worker(worker_id)
    if not tx.try_lease("sweeper", me, lease):
        return 0
    tx.forget_stale_workers(max(10 * lease, 300.0))
    tx.prune_grants(WINDOW_MARGIN)
    outcomes = [Outcome(e.step_id, e.run_id, e.lease_token, error=_error(e.reason, e.owner, lease),
                        kind=e.reason, expired=True) for e in tx.expired(batch)]
    advancer.record(tx, outcomes)
    return (len(outcomes) + advancer.sweep_queue_timeouts(tx)
            + advancer.sweep_deadlines(tx) + sweep_waits(advancer, tx))


def _error(reason: str, owner: str | None, lease: float) -> dict[str, Any]:
    if reason == "timeout":
        message = "the attempt ran past its timeout"
        kind = "TimeoutError"
    elif reason == "heartbeat":
        message = "no heartbeat for 3 intervals: the attempt was cancelled"
        kind = "HeartbeatTimeout"
    else:
        message = f"worker {owner} stopped renewing its lease (crashed, paused or cut off)"
        kind = "LeaseExpired"
    return {"type": kind, "message": message, "traceback": None}
