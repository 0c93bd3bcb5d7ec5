"""Group commit: the worker records every outcome that has arrived *and* claims work for
the freed slots in one transaction, so a chain of tasks costs about one durable commit per
task and a fan-out far less (one per `concurrency` tasks). That commit is the engine's
physical limit: nothing here may add a statement, a read or a transaction per step.

On PostgreSQL the commit sends `NOTIFY` only for ready work this worker could not take
itself, so idle workers wake without a storm of notifications.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ...store import Store
from ...store.protocol import Tx
from ...store.records import ClaimedStep
from ..core.advance import Advancer
from ..core.limits import ClaimReport, LimitedClaims
from ..core.outcome import Outcome

log = logging.getLogger("waypost.worker")

#: What a commit claimed, and, when it claimed nothing, the seconds until a step it could
#: claim is due (a retry's backoff ends, a rate window moves); infinite otherwise.
Claimed = tuple[list[ClaimedStep], float]
#: One group commit: (store, outcomes, free slots) -> what it claimed.
Commit = Callable[[Store, list[Outcome], int], Claimed]


@dataclass
class WorkerStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    transactions: int = 0
    lost_leases: int = 0


@dataclass
class GroupCommit:
    """A worker's group commits, and what outlives one: the state of its limited claims,
    the runs it has marked running already, its counts."""

    worker_id: str
    lease: float
    concurrency: int
    claims: LimitedClaims
    advancer: Advancer
    stats: WorkerStats
    # Runs this worker has already marked running (insertion-ordered, bounded).
    _running_runs: dict[str, None] = field(default_factory=dict, init=False)

    def commit(self, store: Store, outcomes: list[Outcome], free: int) -> Claimed:
        batch = uuid.uuid4().hex[:16]
        tries = 0
        report = ClaimReport()

        def work(tx: Tx) -> tuple[list[bool], list[ClaimedStep], float]:
            nonlocal tries, report
            tries += 1
            report = ClaimReport()
            accepted, made_ready = self.advancer.record(tx, outcomes, notify=False)
            # A retry after a lost connection: the first try's commit may have gone through,
            # and what it claimed is ours to run (claimed in this same batch).
            claimed = tx.claimed_with(self.worker_id, batch) if tries > 1 and free > 0 else []
            if not any(c.solo for c in claimed):
                claimed += self.claims.claim(tx, self.worker_id, batch, free - len(claimed),
                                             self.lease, report,
                                             alone=free == self.concurrency and not claimed)
            gave_back = bool(claimed) and claimed[0].solo and free > 1
            if (made_ready and len(claimed) == free) or gave_back:
                tx.notify()  # we could not take everything that is ready: wake the others
            new_runs = sorted({c.run_id for c in claimed if c.run_id not in self._running_runs})
            if new_runs:
                tx.mark_runs_running(new_runs)
            next_due = math.inf
            if not claimed and free > 0:
                next_due = self.claims.next_due(tx, report)
            return accepted, claimed, next_due

        accepted, claimed, next_due = store.transact(work)
        self.claims.settle(report)
        for c in claimed:
            self._running_runs[c.run_id] = None
        while len(self._running_runs) > 10_000:
            self._running_runs.pop(next(iter(self._running_runs)))
        self.stats.transactions += 1
        self.stats.claimed += len(claimed)
        for outcome, ok in zip(outcomes, accepted, strict=True):
            if not ok and outcome.handoff is not None:
                log.debug("step %s of run %s was completed before its hand-off was recorded",
                          outcome.step_id, outcome.run_id)
            elif not ok:
                self.stats.rejected += 1
                log.warning("step %s of run %s: this attempt no longer holds its lease "
                            "(expired or taken over); its outcome was discarded",
                            outcome.step_id, outcome.run_id)
            elif outcome.ok:
                self.stats.succeeded += 1
            else:
                self.stats.failed += 1
        return claimed, next_due


def record(commit: Commit, store: Store, outcomes: list[Outcome], free: int) -> Claimed:
    """`commit`, with user data kept from killing the worker. An outage never raises
    here (the store retries it for as long as it lasts); what does is a transaction
    the database refuses for good (a value it cannot store) or a defect in recording
    an outcome. Such a batch is recorded again one outcome at a time, so the others
    commit, and an outcome refused alone becomes its attempt's failure (Fatal: the same
    value would be refused again), named in its step's history and dead letter."""
    try:
        return commit(store, outcomes, free)
    except Exception as exc:
        if not outcomes:
            raise
        log.exception("recording %d outcomes failed; recording them one by one",
                      len(outcomes))
        first = exc
    if len(outcomes) > 1:
        for outcome in outcomes:
            record(commit, store, [outcome], 0)
        return _claim_only(commit, store, free)
    [o] = outcomes
    why = (str(first).splitlines() or [""])[0]
    refused = Outcome(o.step_id, o.run_id, o.token, fatal=True, error={
        "type": "OutcomeRefused", "traceback": None,
        "message": f"this attempt's outcome could not be recorded: "
                   f"{type(first).__name__}: {why}"})
    try:
        commit(store, [refused], 0)
    except Exception:  # its lease runs out; the sweeper records it as lost
        log.exception("step %s of run %s: not even its failure could be recorded",
                      o.step_id, o.run_id)
    return _claim_only(commit, store, free)


def _claim_only(commit: Commit, store: Store, free: int) -> Claimed:
    """What the failed batch would have claimed; nothing to do for no free slot."""
    return commit(store, [], free) if free > 0 else ([], math.inf)
