"""The worker: claim ready steps, run them, record outcomes — never holding a transaction
while user code runs.

One loop thread owns the database connection. Task bodies run on the executor and hand
their outcome back through a queue; the loop records every outcome that has arrived *and*
claims work for the freed slots in one transaction (group commit), so a chain of tasks
costs about one durable commit per task and a fan-out far less.
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
from dataclasses import dataclass, field
from typing import Any

from ... import codec
from ...store import Store, open_store
from ...store.protocol import Tx
from ...store.records import ClaimedStep, WorkerRow
from ...vocabulary.context import DEFAULT_HEARTBEAT, Heart
from ...vocabulary.task import Task, registered_tasks
from ..core import deliveries, schedules
from ..core.advance import Advancer
from ..core.limits import ClaimReport, LimitedClaims
from ..core.outcome import Outcome
from ..seam import local_definitions
from .executor import Executor, error_of
from .isolation import KILL_GRACE, ChildAttempt, refuse_in_main_script
from .sweeper import HOST, PID_SPACE, sweep
from .telemetry import TELEMETRY

log = logging.getLogger("waypost.worker")
_WAKE = object()


@dataclass
class _Held:
    step: ClaimedStep
    heart: Heart = field(default_factory=Heart)
    future: concurrent.futures.Future[Outcome] | None = None
    deadline: float = math.inf
    abandoned: bool = False
    child: ChildAttempt | None = None  # isolation="process": the process to kill
    beating: bool = False  # has sent a heartbeat (monitored even if it declared none)
    started: float = field(default_factory=time.monotonic)


@dataclass
class WorkerStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    transactions: int = 0
    lost_leases: int = 0


def _outcome_of(step: ClaimedStep, future: concurrent.futures.Future[Outcome]) -> Outcome:
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
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stop = threading.Event()
        # (deadline, reason) per stop request: appended, never rewritten, so that a signal
        # handler interrupting another one cannot lengthen a grace already shortened.
        self._stop_requests: list[tuple[float, str | None]] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._held: dict[tuple[int, str], _Held] = {}
        # Runs this worker has already marked running (insertion-ordered, bounded).
        self._running_runs: dict[str, None] = {}

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
        listener = self._start_listener()
        try:
            tasks = codec.dumps(sorted(self.tasks))
            definitions = codec.dumps(local_definitions())

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
            self._ready.set()
            if on_ready is not None:
                on_ready()
            self._loop(store, executor)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._stop.set()
            self._stop_listener(listener)
            executor.shutdown()
            try:
                store.patience = 5.0
                if failure is not None and self._held:
                    self._give_back_lost(store, failure)
                store.transact(lambda tx: tx.remove_worker(self.id, self.incarnation))
            except Exception as exc:  # the database may be gone; the sweeper forgets us later
                log.warning("could not unregister worker %s: %s", self.id, exc)
            store.close()

    def _give_back_lost(self, store: Store, failure: BaseException) -> None:
        """The loop died on an error (not a kill -9, which the sweeper sees): the attempts
        it held are over, so they are given back now, as lost, not when their leases run
        out. If recording them fails as well, their leases are at least expired, for the
        next sweeper to give them back."""
        entries = [e for e in self._held.values() if not e.abandoned]
        tokens = [e.step.lease_token for e in entries]
        error = {"type": "WorkerError", "traceback": None,
                 "message": f"worker {self.id} stopped on an error: "
                            f"{type(failure).__name__}: {failure}"}
        outcomes = [Outcome(e.step.id, e.step.run_id, e.step.lease_token, error=error,
                            kind="lost", expired=True) for e in entries]

        def expire(tx: Tx) -> int:
            return tx.expire_leases(self.id, tokens)

        def lost(tx: Tx) -> None:
            expire(tx)
            self.advancer.record(tx, outcomes)

        try:
            store.transact(lost)
            log.warning("worker %s gave back %d attempts as lost", self.id, len(outcomes))
        except Exception as exc:
            log.warning("worker %s could not record its attempts as lost (%s); their leases "
                        "are expired for the sweeper", self.id, exc)
            store.transact(expire)

    def _start_listener(self) -> threading.Thread | None:
        """PostgreSQL only: a thread turns NOTIFY into a wake-up of the loop. A pipe
        interrupts its wait on stop, so stopping never waits for a poll interval."""
        if not self.url.startswith(("postgresql:", "postgres:")):
            return None
        self._interrupt_r, self._interrupt_w = os.pipe()

        def listen() -> None:
            store: Store | None = None
            while not self._stop.is_set():
                try:
                    if store is None:
                        store = open_store(self.url)
                    if store.wait_for_wakeup(5.0, self._interrupt_r):
                        self._queue.put(_WAKE)
                except Exception as exc:  # database away: the loop still polls
                    log.debug("listener: %s", exc)
                    if store is not None:
                        store.close()
                        store = None
                    self._stop.wait(1.0)
            if store is not None:
                store.close()

        thread = threading.Thread(target=listen, name="waypost-listen", daemon=True)
        thread.start()
        return thread

    def _stop_listener(self, thread: threading.Thread | None) -> None:
        if thread is None:
            return
        os.write(self._interrupt_w, b"x")
        thread.join(10)
        os.close(self._interrupt_r)
        os.close(self._interrupt_w)

    def _loop(self, store: Store, executor: Executor) -> None:
        held: dict[tuple[int, str], _Held] = {}
        self._held = held  # what serve() gives back if this loop dies on an error
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
            if free and any(h.step.solo for h in held.values()):
                free = 0  # a step in quarantine runs alone (store.sql.claims)
            if outcomes or (free > 0 and now >= claim_at):
                batch, outcomes = outcomes, []
                claimed, next_due = self._record(store, batch, free)
                for step in claimed:
                    held[(step.id, step.lease_token)] = self._submit(executor, step)
                if claimed:  # a task that promised heartbeats needs them passed on soon
                    heartbeat_at = min(heartbeat_at, now + self._heartbeat_period(held))
                poll_wait = 0.01 if claimed else min(max(poll_wait * 2, 0.01), self.poll)
                claim_at = now if len(claimed) == free else now + min(poll_wait, next_due)
            if now >= heartbeat_at:
                self._heartbeat(store, held)
                heartbeat_at = now + self._heartbeat_period(held)
            if now >= sweep_at:
                store.transact(lambda tx: sweep(tx, self.advancer, self.id, self.lease))
                sweep_at = now + min(1.0, self.lease / 3)
            outcomes += self._expire_local(held, now)
            if stopping and (not held or now >= stop_deadline):
                if outcomes:  # timeouts just reported: record them, do not give them back
                    self._record(store, outcomes, 0)
                self._release(store, held)
                return
            wait = min(claim_at if free > 0 and not stopping else math.inf, heartbeat_at, sweep_at,
                       stop_deadline, min((h.deadline for h in held.values()), default=math.inf))
            if not outcomes:
                finished, woken = self._wait(held, max(0.0, wait - time.monotonic()))
                outcomes += finished
                if woken:
                    claim_at = poll_wait = 0.0

    def _wait(self, held: dict[tuple[int, str], _Held],
              timeout: float) -> tuple[list[Outcome], bool]:
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
            key, future = item
            entry = held.get(key)
            if entry is None or entry.future is not future or future is None:
                continue
            del held[key]
            if entry.abandoned:
                continue
            outcome = _outcome_of(entry.step, future)
            TELEMETRY.ended(entry.step, outcome, time.monotonic() - entry.started)
            outcomes.append(outcome)
        return outcomes, woken

    def _submit(self, executor: Executor, step: ClaimedStep) -> _Held:
        task = self.tasks[step.task]
        entry = _Held(step)
        TELEMETRY.started(step)
        if step.timeout:
            entry.deadline = time.monotonic() + step.timeout
        future, entry.child = executor.submit(task, step, entry.heart)
        entry.future = future

        def done(f: concurrent.futures.Future[Outcome],
                 key: tuple[int, str] = (step.id, step.lease_token)) -> None:
            self._queue.put((key, f))

        future.add_done_callback(done)
        return entry

    def _record(self, store: Store, outcomes: list[Outcome],
                free: int) -> tuple[list[ClaimedStep], float]:
        """`_commit`, with user data kept from killing the worker. An outage never raises
        here (the store retries it for as long as it lasts); what does is a transaction
        the database refuses for good (a value it cannot store) or a defect in recording
        an outcome. Such a batch is recorded again one outcome at a time, so the others
        commit, and an outcome refused alone becomes its attempt's failure (Fatal: the same
        value would be refused again), named in its step's history and dead letter."""
        try:
            return self._commit(store, outcomes, free)
        except Exception as exc:
            if not outcomes:
                raise
            log.exception("recording %d outcomes failed; recording them one by one",
                          len(outcomes))
            first = exc
        if len(outcomes) > 1:
            for outcome in outcomes:
                self._record(store, [outcome], 0)
            return self._claim_only(store, free)
        [o] = outcomes
        why = (str(first).splitlines() or [""])[0]
        refused = Outcome(o.step_id, o.run_id, o.token, fatal=True, error={
            "type": "OutcomeRefused", "traceback": None,
            "message": f"this attempt's outcome could not be recorded: "
                       f"{type(first).__name__}: {why}"})
        try:
            self._commit(store, [refused], 0)
        except Exception:  # its lease runs out; the sweeper records it as lost
            log.exception("step %s of run %s: not even its failure could be recorded",
                          o.step_id, o.run_id)
        return self._claim_only(store, free)

    def _claim_only(self, store: Store, free: int) -> tuple[list[ClaimedStep], float]:
        """What the failed batch would have claimed; nothing to do for no free slot."""
        return self._commit(store, [], free) if free > 0 else ([], math.inf)

    def _commit(self, store: Store, outcomes: list[Outcome],
                free: int) -> tuple[list[ClaimedStep], float]:
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
            claimed = tx.claimed_with(self.id, batch) if tries > 1 and free > 0 else []
            if not any(c.solo for c in claimed):
                claimed += self._claims.claim(tx, self.id, batch, free - len(claimed),
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
                next_due = self._claims.next_due(tx, report)
            return accepted, claimed, next_due

        accepted, claimed, next_due = store.transact(work)
        self._claims.settle(report)
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

    def _heartbeat_period(self, held: dict[tuple[int, str], _Held]) -> float:
        """Renew leases every third of a lease, and pass on task heartbeats at least twice
        per interval any held task promised (or, having beaten, is held to by default)."""
        intervals = [h.step.heartbeat or DEFAULT_HEARTBEAT for h in held.values()
                     if h.step.heartbeat or h.beating]
        return min([self.lease / 3, *(i / 2 for i in intervals)])

    def _heartbeat(self, store: Store, held: dict[tuple[int, str], _Held]) -> None:
        beats, tokens = [], []
        for entry in held.values():
            if not entry.abandoned:
                tokens.append(entry.step.lease_token)
            details = entry.heart.take()
            if details is not None and not entry.abandoned:
                beats.append((entry.step.id, entry.step.lease_token, details))
                entry.beating = True

        def work(tx: Tx) -> set[tuple[int, str]]:
            tx.worker_alive(self.id)
            for step_id, token, details in beats:
                tx.beat(step_id, token, details)
            return tx.renew(self.id, tokens, self.lease) if tokens else set()

        alive = store.transact(work)
        for key, entry in held.items():
            if not entry.abandoned and key not in alive:
                self._cancel(entry)

    def _cancel(self, entry: _Held) -> None:
        """The attempt was ended elsewhere (lease lost, heartbeats missed, cancelled): tell
        the running code, and ignore whatever it reports now."""
        self.stats.lost_leases += 1
        log.warning("step %s of run %s: attempt %d no longer holds its lease (expired, "
                    "cancelled or taken over); cancelling it", entry.step.name,
                    entry.step.run_id, entry.step.attempts)
        entry.heart.cancelled.set()
        entry.abandoned = True
        entry.deadline = math.inf
        assert entry.future is not None
        entry.future.cancel()  # an async body is cancelled; a thread is told via ctx
        if entry.child is not None:
            entry.child.stop()  # its slot frees once the process is gone

    def _expire_local(self, held: dict[tuple[int, str], _Held], now: float) -> list[Outcome]:
        """Fail attempts that ran past their timeout; a thread cannot be killed, so its
        late result is simply ignored (the slot frees when the thread returns); a child
        process is killed."""
        out = []
        for entry in held.values():
            if not entry.abandoned and now >= entry.deadline:
                entry.abandoned = True
                entry.deadline = math.inf  # reported; no reason to wake for it again
                assert entry.future is not None
                entry.future.cancel()
                if entry.child is not None:
                    entry.child.stop()
                step = entry.step
                exc = TimeoutError(f"task exceeded its {step.timeout:g}s timeout")
                out.append(Outcome(step.id, step.run_id, step.lease_token, error=error_of(exc),
                                   kind="timeout"))
                TELEMETRY.ended(step, out[-1], time.monotonic() - entry.started)
        return out

    def _release(self, store: Store, held: dict[tuple[int, str], _Held]) -> None:
        children = [e for e in held.values() if e.child is not None]
        for entry in children:  # killed before their steps are given back: no overlap
            assert entry.child is not None and entry.future is not None
            entry.child.stop()
            entry.future.cancel()
        concurrent.futures.wait([e.future for e in children if e.future is not None],
                                timeout=KILL_GRACE + 5)
        if held:
            requests = sorted(self._stop_requests, key=lambda r: r[0])
            why = next((r for _, r in requests if r), "asked to stop")
            reason = (f"worker {self.id} stopped ({why}) before the attempt finished; given "
                      "back to run again, not counted against its retries")
            tokens = [e.step.lease_token for e in held.values()]
            released = store.transact(lambda tx: tx.release_held(self.id, tokens, reason))
            log.info("worker %s released %d steps it could not finish", self.id, released)
            for entry in held.values():
                entry.abandoned = True
