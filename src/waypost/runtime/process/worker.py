"""The worker: claim ready steps, run them, record outcomes — never holding a transaction
while user code runs.

One loop thread owns the database connection and ties the parts together. Task bodies run
on the executor and hand their outcome back through a queue, which the PostgreSQL listener
(listener.py) and stop requests also wake; each turn of the loop records the outcomes that
have arrived and claims work for the freed slots in one transaction (commits.py), renews
its leases (heartbeats.py), fails attempts past their timeout and, on stop, gives back the
attempts it holds (held.py).
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from ... import codec
from ...registry import registry
from ...store import Store, open_store
from ...store.protocol import Tx
from ...store.records import ClaimedStep, WorkerRow
from ...vocabulary.task import Task, registered_tasks
from ..core import deliveries, schedules
from ..core.advance import Advancer
from ..core.limits import LimitedClaims
from ..core.outcome import Outcome
from .commits import Claimed, GroupCommit, WorkerStats, record
from .executor import Executor
from .heartbeats import LeaseRenewal
from .held import Held, HeldAttempts, Key
from .isolation import refuse_in_main_script
from .listener import start_listener
from .sweeper import HOST, PID_SPACE, sweep
from .telemetry import TELEMETRY

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("waypost.worker")
_WAKE = object()


class Worker:
    def __init__(
        self,
        url: str,
        *,
        tasks: dict[str, Task[Any, Any]] | None = None,
        concurrency: int = 8,
        lease: float = 30.0,
        poll: float = 0.25,
        name: str | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.url = url
        self.tasks = tasks if tasks is not None else dict(registered_tasks())
        self._claims = LimitedClaims(self.tasks)
        self.concurrency = concurrency
        self.lease = lease
        self.poll = poll
        self.id = name or f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        #: This incarnation of the worker `id`: a process restarted under the same name is
        #: another one, and does not take over the leases of the one before.
        self.incarnation = uuid.uuid4().hex
        self.stats = WorkerStats()
        self.advancer = Advancer()
        self._commits = GroupCommit(self.id, lease, concurrency, self._claims, self.advancer,
                                    self.stats)
        self._leases = LeaseRenewal(self.id, lease)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        # (deadline, reason) per stop request: appended, never rewritten, so that a signal
        # handler interrupting another one cannot lengthen a grace already shortened.
        self._stop_requests: list[tuple[float, str | None]] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._held = HeldAttempts()

    # -- control -----------------------------------------------------------------------------
    def start(self) -> None:
        """Serve in a background thread (embedded mode)."""
        self._thread = threading.Thread(target=self._serve_thread, name="waypost-worker",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._failure is not None:
            raise self._failure

    def _serve_thread(self) -> None:
        try:
            self.serve()
        except BaseException as exc:  # reported to whoever started or stops us
            self._failure = exc
            self._ready.set()
            log.exception("worker %s stopped on an error", self.id)

    def request_stop(self, grace: float = 10.0, reason: str | None = None) -> None:
        """Stop claiming; let running attempts finish for `grace` seconds, then give back
        whatever is still held so another worker takes it at once. Safe in a signal handler;
        a later request may shorten the grace. `reason` goes into the history of what is
        given back."""
        self._stop_requests.append((time.monotonic() + grace, reason))
        self._stop.set()
        self._queue.put(_WAKE)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def force_stop(self, reason: str, hard_after: float = 5.0) -> None:
        """Stop now: give back what is held without waiting for it (a second Ctrl-C). The
        process exits on its own `hard_after` seconds later if the loop cannot get there
        (a database that does not answer). Safe in a signal handler."""
        self.request_stop(0.0, reason)

        def hard_exit() -> None:
            log.error("worker %s could not stop within %gs; exiting", self.id, hard_after)
            os._exit(130)

        timer = threading.Timer(hard_after, hard_exit)
        timer.daemon = True
        timer.start()

    def stop(self, grace: float = 10.0) -> None:
        self.request_stop(grace)
        if self._thread is not None:
            self._thread.join(grace + 30)

    def wake(self) -> None:
        self._queue.put(_WAKE)

    # -- the loop ------------------------------------------------------------------------------
    def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Run until `stop()`; the CLI calls this on its main thread. `on_ready` runs once
        the worker is registered in the store."""
        refuse_in_main_script()
        failure: BaseException | None = None
        store = open_store(self.url)
        store.patience = math.inf  # a database outage pauses the worker, it does not kill it
        store.bound_transactions(max(self.lease, 1.0))  # see Store.bound_transactions
        executor = Executor(self.concurrency)
        listener = start_listener(self.url, self._stop, self.wake)
        try:
            self._register(store)
            self._ready.set()
            if on_ready is not None:
                on_ready()
            self._loop(store, executor)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._stop.set()
            if listener is not None:
                listener.close()
            executor.shutdown()
            try:
                store.patience = 5.0
                if failure is not None and self._held:
                    self._held.give_back_lost(store, self.advancer, self.id, failure)
                store.transact(lambda tx: tx.remove_worker(self.id, self.incarnation))
            except Exception as exc:  # the database may be gone; the sweeper forgets us later
                log.warning("could not unregister worker %s: %s", self.id, exc)
            store.close()

    def _register(self, store: Store) -> None:
        tasks = codec.dumps(sorted(self.tasks))
        definitions = codec.dumps(registry.fingerprints())

        boot_id, pid_ns = PID_SPACE

        handlers = deliveries.subscribers(self.tasks)  # compiled here: user code
        timed = schedules.scheduled(self.tasks)

        def register(tx: Tx) -> tuple[WorkerRow | None, list[str], list[str]]:
            before = tx.register_worker(self.id, HOST, os.getpid(), tasks, self.incarnation,
                                        boot_id, pid_ns, self.lease, definitions)
            subscribed = deliveries.register(tx, handlers) + schedules.register(tx, timed)
            return before, self._claims.register(tx), subscribed

        before, changed, subscribed = store.transact(register)
        for name in subscribed:
            log.info("subscription or schedule %s stored, changed or removed", name)
        if before is not None:
            log.warning("worker %s was registered already (pid %s on %s, incarnation %s): "
                        "the attempts it held are given back as lost", self.id, before.pid,
                        before.host, before.incarnation)
        for name in changed:
            log.warning("limit %s had another definition in the store (workers running "
                        "other code?); this worker's applies now", name)

    def _loop(self, store: Store, executor: Executor) -> None:
        held = HeldAttempts()
        self._held = held  # what serve() gives back if this loop dies on an error
        commit = self._commit
        outcomes: list[Outcome] = []
        now = time.monotonic()
        claim_at, poll_wait = now, 0.01
        heartbeat_at, sweep_at = now + self.lease / 3, now
        stop_deadline, stop_seen = math.inf, 0
        while True:
            now = time.monotonic()
            stopping = self._stop.is_set()
            if stopping and stop_seen != len(self._stop_requests):
                stop_seen = len(self._stop_requests)
                stop_deadline = min(d for d, _ in self._stop_requests[:stop_seen])
            free = 0 if stopping else self.concurrency - len(held)
            if free and held.solo:
                free = 0  # a step in quarantine runs alone (store.sql.claims)
            if outcomes or (free > 0 and now >= claim_at):
                batch, outcomes = outcomes, []
                claimed, next_due = record(commit, store, batch, free)
                for step in claimed:
                    held.add(self._submit(executor, step))
                if claimed:  # a task that promised heartbeats needs them passed on soon
                    heartbeat_at = min(heartbeat_at, now + self._leases.period(held))
                poll_wait = 0.01 if claimed else min(max(poll_wait * 2, 0.01), self.poll)
                claim_at = now if len(claimed) == free else now + min(poll_wait, next_due)
            if now >= heartbeat_at:
                self.stats.lost_leases += self._leases.renew(store, held)
                heartbeat_at = now + self._leases.period(held)
            if now >= sweep_at:
                store.transact(lambda tx: sweep(tx, self.advancer, self.id, self.lease))
                sweep_at = now + min(1.0, self.lease / 3)
            outcomes += self._expire_local(held, now)
            if stopping and (not held or now >= stop_deadline):
                if outcomes:  # timeouts just reported: record them, do not give them back
                    record(commit, store, outcomes, 0)
                held.release(store, self.id, self._stop_requests)
                return
            wait = min(claim_at if free > 0 and not stopping else math.inf, heartbeat_at, sweep_at,
                       stop_deadline, held.next_deadline())
            if not outcomes:
                finished, woken = self._wait(held, max(0.0, wait - time.monotonic()))
                outcomes += finished
                if woken:
                    claim_at = poll_wait = 0.0

    def _wait(self, held: HeldAttempts, timeout: float) -> tuple[list[Outcome], bool]:
        """Block until an attempt finishes or someone wakes us; collect what finished and
        whether new work was announced."""
        got: list[Any] = []
        try:
            got.append(self._queue.get(timeout=timeout))
            while True:
                got.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        outcomes, woken = [], False
        for item in got:
            if item is _WAKE:
                woken = True
                continue
            outcome = held.finish(*item)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes, woken

    def _submit(self, executor: Executor, step: ClaimedStep) -> Held:
        task = self.tasks[step.task]
        entry = Held(step)
        TELEMETRY.started(step)
        if step.timeout:
            entry.deadline = time.monotonic() + step.timeout
        future, entry.child = executor.submit(task, step, entry.heart)
        entry.future = future

        def done(f: concurrent.futures.Future[Outcome],
                 key: Key = (step.id, step.lease_token)) -> None:
            self._queue.put((key, f))

        future.add_done_callback(done)
        return entry

    def _commit(self, store: Store, outcomes: list[Outcome], free: int) -> Claimed:
        """Every transaction of the group commit goes through here, where a profile
        (benchmarks/profile_chain.py) times it."""
        return self._commits.commit(store, outcomes, free)

    def _expire_local(self, held: HeldAttempts, now: float) -> list[Outcome]:
        """Timeouts the worker enforces itself (the sweeper does when the worker is gone);
        tests break the loop here."""
        return held.expire_overdue(now)
