"""Claiming through limits: how a worker takes steps of tasks that `use` a `wp.limit`.

The decision is made in the worker's claim transaction, against state in the database, so
it holds across every worker and process on the store, retries included (a retry is
claimed like any attempt). For each set of limits its tasks use, the worker locks the
limits' rows (PostgreSQL `FOR UPDATE`; SQLite's writers are serialised already), counts
what is in use, claims at most what is left and records a grant per claimed attempt and
limit, all before the commit. A step that may not run now is simply not claimed: it stays
`ready`, holding no thread, and the worker wakes when the rate window moves.

Rate: a sliding-window log. An attempt may start if fewer than `rate_count` grants fall
within the window. Unlike a token bucket (which lets `2 * rate` through in some sliding
period: a full bucket spent at once, then the refill) this never grants more than the rate
in any window, while still letting a burst of `rate` through at once.

Concurrency: the grants whose step still runs under the grant's lease token (see
`store.sql`); nothing to repair after a crash, the slot of a dead worker's attempt frees
when its lease is expired. A step handed to another system (`completes_externally`) keeps
its slot only until the hand-off: it is still `running`, but no worker is calling anything
for it any more, and slots held for hours by other systems would starve the limit.

Tasks that use no limit are claimed with the plain claim statement, after the limited ones:
a worker that serves no task with a limit runs exactly the statements it ran before; one
that does pays one statement per claim (is any of those steps ready?), and the locks and
counts only while one is.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ...store.protocol import Tx
from ...store.records import ClaimedStep, LimitRow
from ...vocabulary.limit import Limit
from ...vocabulary.task import Task

#: Grants stay in their rate window this much longer than the period. An attempt's call
#: happens a little after its grant (the commit, a thread picking the task up), and not
#: always equally soon after: with a window of exactly the period, one attempt granted at
#: the start of a window but slow to begin and another granted promptly one period later
#: could land in the same period of *call* times as a full window's worth, one call more
#: than the rate. The margin absorbs a difference in start delay up to this long, at a
#: throughput cost of margin/period (under 10% for '/s' rates, nothing to speak of for
#: '/minute' and longer); a start delayed longer than this (a stalled machine) is not covered.
WINDOW_MARGIN = 0.1


def stored(limit: Limit) -> LimitRow:
    return LimitRow(limit.name, limit.rate, limit.rate_count, limit.rate_period,
                    limit.concurrency)


def window(row: LimitRow) -> float | None:
    return None if row.rate_period is None else row.rate_period + WINDOW_MARGIN


@dataclass(frozen=True)
class _Group:
    """Tasks that use the same limits (sorted names), claimed together."""

    limits: tuple[str, ...]
    tasks: list[str]


@dataclass
class ClaimReport:
    """What one claim transaction learnt about limits, applied once it has committed (a
    transaction may run more than once)."""

    blocked: set[tuple[str, ...]] = field(default_factory=set)
    #: Seconds until a full rate window lets the next attempt of the group start, as the
    #: database just said.
    rate_wait: dict[tuple[str, ...], float] = field(default_factory=dict)
    #: The same for groups known to be full from an earlier transaction.
    known_wait: list[float] = field(default_factory=list)


class LimitedClaims:
    """The claim plan of one worker: its tasks grouped by the limits they use."""

    def __init__(self, tasks: dict[str, Task[Any, Any]]) -> None:
        self.free_tasks = sorted(name for name, t in tasks.items() if not t.limits)
        #: Tasks whose steps need a completion token drawn at claim.
        self.external = sorted(name for name, t in tasks.items() if t.completes_externally)
        groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
        self.limits: dict[str, Limit] = {}
        for name, t in sorted(tasks.items()):
            if t.limits:
                groups[tuple(sorted(lim.name for lim in t.limits))].append(name)
                self.limits.update({lim.name: lim for lim in t.limits})
        self.groups = [_Group(key, names) for key, names in sorted(groups.items())]
        self._rate_free_at: dict[tuple[str, ...], float] = {}  # time.monotonic()

    def register(self, tx: Tx) -> list[str]:
        """Store the definitions of the limits this worker's tasks use; returns the names
        whose stored definition this changed (workers running different code)."""
        if not self.limits:
            return []
        before = {row.name: row for row in tx.get_limits(sorted(self.limits))}
        rows = [stored(self.limits[name]) for name in sorted(self.limits)]
        tx.put_limits(rows)
        return [row.name for row in rows if row.name in before and before[row.name] != row]

    def _external(self, tasks: list[str]) -> list[str]:
        return [t for t in tasks if t in self.external] if self.external else []

    def claim(self, tx: Tx, owner: str, batch: str, free: int, lease: float,
              report: ClaimReport, alone: bool = False) -> list[ClaimedStep]:
        """`alone`: the worker holds nothing and may take a step in quarantine, which is
        then all it takes (see store.sql.claims)."""
        claimed: list[ClaimedStep] = []
        if free > 0 and self.groups:
            now = time.monotonic()
            asking = []
            for group in self.groups:
                free_at = self._rate_free_at.get(group.limits, 0.0)
                if free_at > now:  # known to be full: no need to ask
                    report.blocked.add(group.limits)
                    report.known_wait.append(free_at - now)
                else:
                    asking.append(group)
            # One statement finds the groups with work; only those take locks.
            ready = tx.ready_among([g.tasks for g in asking])
            for group in (g for g, r in zip(asking, ready, strict=True) if r):
                room = free - len(claimed)
                if room < 1:
                    break
                claimed += self._claim_group(tx, group, owner, batch, room, lease, report,
                                             alone and not claimed)
                if claimed and claimed[0].solo:
                    return claimed
        claimed += tx.claim(owner, batch, free - len(claimed), lease, self.free_tasks,
                            self._external(self.free_tasks), alone and not claimed)
        return claimed

    def _claim_group(self, tx: Tx, group: _Group, owner: str, batch: str, room: int,
                     lease: float, report: ClaimReport, alone: bool) -> list[ClaimedStep]:
        rows = tx.lock_limits(group.limits)
        if len(rows) < len(group.limits):  # never registered, or deleted: ours apply
            known = {row.name for row in rows}
            tx.put_limits([stored(self.limits[n]) for n in group.limits if n not in known])
            rows = tx.lock_limits(group.limits)
        allowed, wait = room, 0.0
        for row in rows:
            use = tx.limit_usage(row.name, window(row), row.rate_count,
                                 row.concurrency is not None)
            if row.rate_count is not None:
                left = row.rate_count - use.granted
                allowed = min(allowed, left)
                if left < 1 and use.nth is not None:
                    wait = max(wait, use.nth + (window(row) or 0.0) - use.now)
            if row.concurrency is not None:
                allowed = min(allowed, row.concurrency - use.running)
        if allowed < 1:
            report.blocked.add(group.limits)
            if wait > 0:
                report.rate_wait[group.limits] = wait
            return []
        got = tx.claim(owner, batch, allowed, lease, group.tasks, self._external(group.tasks),
                       alone)
        tx.add_grants([(name, step.id, step.lease_token) for step in got
                       for name in group.limits])
        return got

    def settle(self, report: ClaimReport) -> None:
        """After the commit: remember until when full rate windows stay full."""
        now = time.monotonic()
        for key, wait in report.rate_wait.items():
            self._rate_free_at[key] = now + wait

    def next_due(self, tx: Tx, report: ClaimReport) -> float:
        """Seconds until a step this worker could claim is due: a retry's backoff ends, or
        a full rate window moves. A group held up by concurrency is not due (its slots
        free when attempts end: its own wake the worker, others' are found by polling)."""
        names = self.free_tasks + [t for g in self.groups if g.limits not in report.blocked
                                   for t in g.tasks]
        due = math.inf
        if names:
            at = tx.next_ready_at(names)
            if at is not None:
                due = max(0.0, at - tx.now())
        return min([due, *report.rate_wait.values(), *report.known_wait])
