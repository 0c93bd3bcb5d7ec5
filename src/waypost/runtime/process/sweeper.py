"""The sweeper: gives back steps whose worker stopped answering.

It runs inside every worker, but only the holder of the `sweeper` lease row acts, so
many workers do not race over the same expired rows. Expiry is judged by the database's
clock in SQL, never by a worker's. Re-queued attempts go through the same advance as a
worker's report (retry policy, dead letter, blocking), fenced by the expired lease token.

A worker on this host whose process no longer exists (kill -9) need not wait out its
lease: its leases are expired at once, which is what makes restarts after a crash fast.
"This host" means the same pid space, not the same host name: containers with host
networking share a host name but not their pids, and a pid that does not exist here may
be a live worker there. Each worker stores its boot id and pid-namespace id; a worker's
pid is looked at only when both equal ours, and otherwise its lease decides.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from ...store.protocol import Tx
from ..core import deliveries, schedules, signals
from ..core.advance import Advancer
from ..core.interventions import sweep_waits
from ..core.limits import WINDOW_MARGIN
from ..core.outcome import Outcome

HOST = socket.gethostname()


def _read(path: str, link: bool = False) -> str | None:
    try:
        if link:
            return os.readlink(path)
        with open(path) as f:
            return f.read().strip() or None
    except OSError:
        return None


def pid_space() -> tuple[str | None, str | None]:
    """(boot id, pid-namespace id) of this process; None where it cannot be known. Without
    Linux's pid namespaces a host's processes share one pid space: the host name is it."""
    if not sys.platform.startswith("linux"):
        return "", ""
    return _read("/proc/sys/kernel/random/boot_id"), _read("/proc/self/ns/pid", link=True)


PID_SPACE = pid_space()


def shares_pids(boot_id: str | None, pid_ns: str | None) -> bool:
    """Whether a worker that registered these ids (from this host name) sees our pids."""
    mine = PID_SPACE
    return None not in mine and (boot_id, pid_ns) == mine


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
    for w in tx.workers_on(HOST):
        gone = w.id != me and shares_pids(w.boot_id, w.pid_ns) and process_gone(w.pid)
        if gone and tx.remove_worker(w.id, w.incarnation):
            tx.expire_owner(w.id)
    offered = signals.sweep(advancer, tx) + schedules.sweep(advancer, tx)
    if not tx.try_lease("sweeper", me, lease):
        return offered
    tx.forget_stale_workers(max(10 * lease, 300.0))
    tx.prune_grants(WINDOW_MARGIN)
    tx.prune_requests(86_400.0)
    outcomes = [Outcome(e.step_id, e.run_id, e.lease_token, error=_error(e.reason, e.owner, lease),
                        kind=e.reason, expired=True) for e in tx.expired(batch)]
    advancer.record(tx, outcomes)
    return (len(outcomes) + deliveries.sweep_replays(advancer, tx)
            + advancer.sweep_queue_timeouts(tx)
            + advancer.sweep_deadlines(tx) + sweep_waits(advancer, tx) + offered)


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
