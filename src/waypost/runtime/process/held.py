"""The attempts a worker holds: running on its executor under a lease token, until their
outcome arrives or they are ended some other way.

An attempt ends without reporting when its lease is lost (expired, cancelled, taken over:
the lease renewal finds out), when it runs past its own timeout (found here, on the
worker's clock), or when the worker stops before it finishes (given back). Held attempts
are keyed by (step id, lease token), so a retry of a step can run on the same worker beside
the abandoned thread of its predecessor; an abandoned attempt keeps its slot until its
thread returns or its process is gone, and whatever it reports then matches nothing.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import time
from dataclasses import dataclass, field

from ...store import Store
from ...store.protocol import Tx
from ...store.records import ClaimedStep
from ...vocabulary.context import Heart
from ..core.advance import Advancer
from ..core.outcome import Outcome
from .bodies import error_of
from .isolation import KILL_GRACE, ChildAttempt
from .telemetry import TELEMETRY

log = logging.getLogger("waypost.worker")

#: (step id, lease token): one attempt, never another attempt of the same step.
Key = tuple[int, str]


@dataclass
class Held:
    step: ClaimedStep
    heart: Heart = field(default_factory=Heart)
    future: concurrent.futures.Future[Outcome] | None = None
    deadline: float = math.inf
    abandoned: bool = False
    child: ChildAttempt | None = None  # isolation="process": the process to kill
    beating: bool = False  # has sent a heartbeat (monitored even if it declared none)
    started: float = field(default_factory=time.monotonic)

    def abandon(self) -> None:
        """Whatever the attempt reports from now on is ignored; its slot stays taken until
        its thread returns or its process is gone."""
        self.abandoned = True
        self.deadline = math.inf  # ended; no reason to wake for it again
        assert self.future is not None
        self.future.cancel()  # an async body is cancelled; a thread runs on, ignored
        if self.child is not None:
            self.child.stop()  # its slot frees once the process is gone


def outcome_of(step: ClaimedStep, future: concurrent.futures.Future[Outcome]) -> Outcome:
    """The attempt's outcome. The executor turns whatever a body does into one; should a
    future still end cancelled or raising, that is this attempt's failure, never the
    worker's, and never an attempt left running with nobody working on it."""
    if future.cancelled():
        error = {"type": "CancelledError", "traceback": None,
                 "message": "the attempt was cancelled before it reported an outcome"}
        return Outcome(step.id, step.run_id, step.lease_token, error=error)
    exc = future.exception()
    if exc is not None:
        return Outcome(step.id, step.run_id, step.lease_token, error=error_of(exc))
    return future.result()


class HeldAttempts:
    """Only the worker's loop thread reads or changes them."""

    def __init__(self) -> None:
        self.attempts: dict[Key, Held] = {}

    def __len__(self) -> int:
        return len(self.attempts)

    def add(self, entry: Held) -> None:
        self.attempts[(entry.step.id, entry.step.lease_token)] = entry

    @property
    def solo(self) -> bool:
        """Whether a step in quarantine is among them."""
        return any(h.step.solo for h in self.attempts.values())

    def next_deadline(self) -> float:
        return min((h.deadline for h in self.attempts.values()), default=math.inf)

    def finish(self, key: Key, future: concurrent.futures.Future[Outcome]) -> Outcome | None:
        """The outcome of an attempt whose future is done, frees its slot; None for one
        that was abandoned (its outcome must not be recorded) or is not held."""
        entry = self.attempts.get(key)
        if entry is None or entry.future is not future:
            return None
        del self.attempts[key]
        if entry.abandoned:
            return None
        outcome = outcome_of(entry.step, future)
        TELEMETRY.ended(entry.step, outcome, time.monotonic() - entry.started)
        return outcome

    def cancel_all_but(self, alive: set[Key]) -> int:
        """The attempts not `alive` were ended elsewhere (lease lost, heartbeats missed,
        cancelled): tell the running code, and ignore whatever it reports now. Returns how
        many were cancelled."""
        lost = 0
        for key, entry in self.attempts.items():
            if entry.abandoned or key in alive:
                continue
            lost += 1
            log.warning("step %s of run %s: attempt %d no longer holds its lease (expired, "
                        "cancelled or taken over); cancelling it", entry.step.name,
                        entry.step.run_id, entry.step.attempts)
            entry.heart.cancelled.set()  # a thread is told via ctx
            entry.abandon()
        return lost

    def expire_overdue(self, now: float) -> list[Outcome]:
        """Fail attempts that ran past their timeout; a thread cannot be killed, so its
        late result is simply ignored (the slot frees when the thread returns); a child
        process is killed."""
        out = []
        for entry in self.attempts.values():
            if not entry.abandoned and now >= entry.deadline:
                entry.abandon()
                step = entry.step
                exc = TimeoutError(f"task exceeded its {step.timeout:g}s timeout")
                out.append(Outcome(step.id, step.run_id, step.lease_token, error=error_of(exc),
                                   kind="timeout"))
                TELEMETRY.ended(step, out[-1], time.monotonic() - entry.started)
        return out

    def release(self, store: Store, worker_id: str,
                stop_requests: list[tuple[float, str | None]]) -> None:
        """Give back what is still held when the worker stops, so another worker takes it
        at once; `stop_requests` (deadline, reason) name why in the steps' history."""
        children = [e for e in self.attempts.values() if e.child is not None]
        for entry in children:  # killed before their steps are given back: no overlap
            assert entry.child is not None and entry.future is not None
            entry.child.stop()
            entry.future.cancel()
        concurrent.futures.wait([e.future for e in children if e.future is not None],
                                timeout=KILL_GRACE + 5)
        if self.attempts:
            requests = sorted(stop_requests, key=lambda r: r[0])
            why = next((r for _, r in requests if r), "asked to stop")
            reason = (f"worker {worker_id} stopped ({why}) before the attempt finished; given "
                      "back to run again, not counted against its retries")
            tokens = [e.step.lease_token for e in self.attempts.values()]
            released = store.transact(lambda tx: tx.release_held(worker_id, tokens, reason))
            log.info("worker %s released %d steps it could not finish", worker_id, released)
            for entry in self.attempts.values():
                entry.abandoned = True

    def give_back_lost(self, store: Store, advancer: Advancer, worker_id: str,
                       failure: BaseException) -> None:
        """The loop died on an error (not a kill -9, which the sweeper sees): the attempts
        it held are over, so they are given back now, as lost, not when their leases run
        out. If recording them fails as well, their leases are at least expired, for the
        next sweeper to give them back."""
        entries = [e for e in self.attempts.values() if not e.abandoned]
        tokens = [e.step.lease_token for e in entries]
        error = {"type": "WorkerError", "traceback": None,
                 "message": f"worker {worker_id} stopped on an error: "
                            f"{type(failure).__name__}: {failure}"}
        outcomes = [Outcome(e.step.id, e.step.run_id, e.step.lease_token, error=error,
                            kind="lost", expired=True) for e in entries]

        def expire(tx: Tx) -> int:
            return tx.expire_leases(worker_id, tokens)

        def lost(tx: Tx) -> None:
            expire(tx)
            advancer.record(tx, outcomes)

        try:
            store.transact(lost)
            log.warning("worker %s gave back %d attempts as lost", worker_id, len(outcomes))
        except Exception as exc:
            log.warning("worker %s could not record its attempts as lost (%s); their leases "
                        "are expired for the sweeper", worker_id, exc)
            store.transact(expire)
