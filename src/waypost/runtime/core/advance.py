"""Transactional advance: an outcome and everything it causes commit together.

Every function here runs inside the caller's transaction, in one `Work`. Recording a
step's outcome, asking the run's driver what follows (runtime/driver.py) and applying
its decisions (successors made ready, a fan-out inserted, what a failure orphans blocked,
the run finished) are one commit, so there is never a moment where a step is done but its
successors are not scheduled. A crash before the commit loses the outcome and the step
runs again (same idempotency key); a crash after it loses nothing.

Exactly once, argued. A step's status changes only through a store verb whose WHERE
names the status it expects, and, for an attempt, the attempt's own lease token:

1. a worker's success or failure (`succeed`, `end_attempt`): `running`, its token, a live
   lease;
2. the sweeper's expiry of a lost, timed-out or silent attempt (`end_attempt(expired)`):
   `running`, the expired token;
3. a completion token (`complete_external`, `fail_external`): `running` and that token;
4. a ready step out of queue time (`expire_queued`): `ready`;
5. timers, gates, operators and the event a `wp.wait_for` matched (`end_wait`,
   `retry_now`, `escalate_wait`): `waiting` or `needs_attention`;
6. `cancel` and deadlines (`cancel_steps`): unfinished statuses, after the run itself
   moved out of an open status in the same statement that checked it (`end_run`);
7. `resume` and replays (`reset_step`): the ended status they read, under the run's lock;
8. a stopping worker giving back what it holds (`release_held`): `running`, its tokens;
9. a machine's waiting visit left by a signal (`end_node`): `waiting`, decided under the
   run's row lock (`machine`); a child run's end ends its parent's step through
   `end_wait` (5).

A machine's own state moves the same way: `transition` is fenced by the run's transition
count, and a signal is taken once (`settle_signal`: only while it is open).

The first write that matches moves the step out of the status the others expect (and
clears the token), so a second report of the same attempt (a retry of this transaction
after a lost commit, a late worker after a takeover, a timer and an operator at once)
matches nothing and is discarded.
"""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import InputError, UnknownTargetError
from ...store.protocol import Tx
from ...store.records import HeldStep
from ..seam import (
    AwaitEvent,
    Block,
    Consume,
    DecideLater,
    Decision,
    EndStep,
    Fact,
    FailRun,
    FanOut,
    FinishRun,
    Insert,
    ItemsEnded,
    MakeReady,
    Release,
    Settled,
    SignalArrived,
    StartChild,
    StepFailed,
    StepsFreed,
    StepSucceeded,
    Transition,
    WaitUntil,
    decide,
)
from . import children, deliveries, event_waits, reopen, retries, sagas, states
from .heads import Heads
from .outcome import Outcome
from .work import FailRunNow, RunState, StepDead, StepEnded, Tell, Work, keys


class Advancer(Heads):
    """Applies drivers' decisions through the store's verbs; shared by an engine's
    threads (its caches, heads.py, are the only state)."""

    # -- units of work -----------------------------------------------------------------------
    def work(self, tx: Tx, notify: bool = True) -> Work:
        """`with advancer.work(tx) as w: ...`: everything the block records is settled
        before the transaction commits (not if the block raises: then nothing commits)."""
        return Work(tx, self, self, notify=notify)

    # -- outcomes ------------------------------------------------------------------------------
    def record(self, tx: Tx, outcomes: list[Outcome],
               notify: bool = True) -> tuple[list[bool], int]:
        """Record outcomes (one transaction, any number of runs). Returns which were
        accepted and how many steps became ready. A worker that will claim in the same
        transaction passes notify=False and wakes others only for what it leaves."""
        accepted: dict[int, bool] = {}
        ordered = sorted(outcomes, key=lambda o: (o.run_id, o.step_id))
        with self.work(tx, notify) as w:
            for o in ordered:
                if o.handoff is not None:
                    accepted[id(o)] = tx.hand_off(o.step_id, o.token, o.handoff)
                    if accepted[id(o)] and o.emits:  # the outbox commits with the hand-off
                        deliveries.publish(w, o.emits, o.run_id)
                        self.carry_out(w)
            successes = [o for o in ordered if o.ok and o.handoff is None]
            held_steps = tx.succeed_many([(o.step_id, o.token, o.output or "") for o in successes])
            for o, held in zip(successes, held_steps, strict=True):
                accepted[id(o)] = held is not None
                if held is not None:
                    if o.emits:  # the outbox: stored with the outcome, or not at all
                        deliveries.publish(w, o.emits, held.run_id, held.name)
                        self.carry_out(w)
                    self.succeeded(w, held, o.output or "null")
            for o in ordered:
                if not o.ok:
                    accepted[id(o)] = retries.record_failure(w, o)
                    self.carry_out(w)
        return [accepted[id(o)] for o in outcomes], w.made_ready

    def external(self, tx: Tx, token: str, output: Any = None,
                 error: dict[str, Any] | None = None) -> str:
        """Complete (or fail) a step that waits for another system; a token works once.
        Returns the run id."""
        try:
            step_id = int(token.split(".")[1])
        except (IndexError, ValueError):
            raise InputError(f"{token!r} is not a waypost completion token") from None
        with self.work(tx) as w:
            if error is None:
                text = codec.dumps(output)
                held = tx.complete_external(step_id, token, text)
                if held is not None:
                    self.succeeded(w, held, text)
            else:
                held = tx.fail_external(step_id, token, codec.dumps(error))
                if held is not None:
                    retries.after_failure(w, held, codec.dumps(error), False)
                    self.carry_out(w)
            if held is None:
                raise InputError(f"completion token {token} was already used, belongs to an "
                                 "attempt that ended, or does not exist")
        return held.run_id

    def succeeded(self, w: Work, held: HeldStep, output: str) -> None:
        w.known[(held.run_id, held.name)] = output
        w.open_delta[held.run_id] -= 1
        self.after_end(w, w.run(held.run_id), held, succeeded=True)

    def dead(self, w: Work, held: HeldStep, error: str, failed: bool = False) -> None:
        """Out of attempts: the step fails and is kept as a dead letter, with its input,
        for `waypost dlq replay`. `failed`: a fenced write has just failed it already."""
        if not failed:
            w.tx.fail(held.id, error)
        w.open_delta[held.run_id] -= 1
        self.after_end(w, w.run(held.run_id), held, succeeded=False, error=error)
        if (held.run_id, held.name) not in w.handled:  # a machine may route the failure
            w.tx.add_dead_letter(held.id, error)

    def after_end(self, w: Work, run: RunState, held: HeldStep, succeeded: bool,
                  error: str | None = None) -> None:
        """A step ended for good: compensations move their chain on, items count toward
        their fan-out, anything else is the driver's to decide."""
        if held.kind == "undo":
            sagas.undo_ended(w, run.id, held, succeeded)
        elif held.kind == "item":
            w.items_ended[(run.id, held.node)] += 1
        elif succeeded:
            self.decide(run, StepSucceeded(held.name, held.node, held.kind))
        else:
            self.decide(run, StepFailed(held.name, held.node, held.kind, error))

    # -- decisions -------------------------------------------------------------------------------
    def decide(self, run: RunState, fact: Fact) -> None:
        if run.id in run.work.ended:
            return
        if run.broken is not None or run.driver is None:
            self.fail_run(run, run.broken or {}, settled=isinstance(fact, Settled))
            return
        self.apply(run, decide(run.driver, run, fact), settled=isinstance(fact, Settled))

    def apply(self, run: RunState, decisions: list[Decision], settled: bool = False) -> None:
        w, tx = run.work, run.work.tx
        for d in decisions:
            if run.id in w.ended:
                return
            if isinstance(d, Release):
                freed = tx.release(run.id, d.steps) if d.steps else []
                if freed:
                    self.decide(run, StepsFreed(freed))
            elif isinstance(d, MakeReady):
                tx.make_ready(run.id, d.step, d.input, d.checksum)
                w.made_ready += 1
            elif isinstance(d, WaitUntil | AwaitEvent):
                if isinstance(d, WaitUntil):
                    tx.make_waiting(run.id, d.step, d.due)
                else:
                    waits, found = event_waits.start(run, d)
                    if found is not None:  # an event stored already satisfies it
                        self._end_step(run, EndStep(d.step, True, found))
                    if not waits:
                        continue
                if run.id not in w.running:  # its clock is ticking, even if no task ran
                    tx.mark_runs_running([run.id])
                    w.running.add(run.id)
            elif isinstance(d, FanOut):
                tx.start_map(run.id, d.step, len(d.items))
                if d.items:
                    tx.insert_steps(run.id, d.items, keys(run.id, d.items))
                    w.open_delta[run.id] += len(d.items)
                    w.made_ready += len(d.items)
                else:
                    self.decide(run, ItemsEnded(d.step))
            elif isinstance(d, Block):
                if d.steps:
                    w.open_delta[run.id] -= tx.block(run.id, d.steps)
            elif isinstance(d, EndStep):
                self._end_step(run, d)
            elif isinstance(d, Insert):
                tx.insert_steps(run.id, d.steps, keys(run.id, d.steps))
                w.open_delta[run.id] += len(d.steps)
                w.made_ready += sum(s.status == "ready" for s in d.steps)
            elif isinstance(d, Transition):
                states.transition(run, d)
            elif isinstance(d, Consume):
                states.settle_signal(w, d.event, d.status, run.machine()[0])
            elif isinstance(d, FinishRun):
                tx.finish_run(run.id, "succeeded", d.output, None)
                self.run_ended(w, run.id, d.output, None)
            elif isinstance(d, StartChild):
                children.start(run, d)
                self.carry_out(w)
            elif isinstance(d, DecideLater):
                states.decide_later(run, d)
            elif isinstance(d, FailRun):
                self.fail_run(run, d.error, settled)
            else:
                self.fail_run(run, {"type": "DefinitionError", "step": None, "message": (
                    f"the runtime cannot carry out {type(d).__name__} yet")}, settled)

    def _end_step(self, run: RunState, d: EndStep) -> None:
        w = run.work
        error = None if d.error is None else codec.dumps({"traceback": None, **d.error})
        w.tx.end_node(run.id, d.step, "succeeded" if d.succeeded else "failed", d.output, error)
        w.open_delta[run.id] -= 1
        if d.succeeded:
            w.known[(run.id, d.step)] = d.output
            self.decide(run, StepSucceeded(d.step, d.step, ""))
        else:
            self.decide(run, StepFailed(d.step, d.step, "", error))

    def fail_run(self, run: RunState, error: dict[str, Any], settled: bool) -> None:
        """The run fails: as its end (`settled`: nothing is open), or now, with its open
        steps cancelled. Either way what succeeded is compensated first, if it can be."""
        w = run.work
        summary = codec.dumps({"step": error.get("step"), "type": error.get("type"),
                               "message": error.get("message")})
        w.ended.add(run.id)
        w.open_delta.pop(run.id, None)
        if not settled:
            if not w.tx.end_run(run.id, "failed", summary):
                return  # it had ended already
            w.tx.cancel_steps(run.id, codec.dumps({**error, "traceback": None}))
            self._abort_children(w.tx, run.id, f"its parent run {run.id} failed")
        self.run_ended(w, run.id, None, error)
        if not sagas.compensate(w, run, summary) and settled:
            w.tx.finish_run(run.id, "failed", None, summary)

    def run_ended(self, w: Work, run_id: str, output: str | None,
                  error: dict[str, Any] | None) -> None:
        """A run ended (succeeded, failed, cancelled): a parent's step waiting for it ends
        the same way, and a keyed delivery lets the next one of its key start."""
        if self.may_have_parent(run_id):
            children.ended(w, run_id, output, error)
        if self.may_hold_lane(run_id):
            deliveries.ended(w, run_id)
        self.carry_out(w)

    # -- the agenda: what the concerns caused ------------------------------------------------
    def carry_out(self, w: Work) -> None:
        """Carry out what the concerns put on the agenda, oldest first (what that causes
        joins the end of it)."""
        agenda = w.agenda
        while agenda:
            item = agenda.popleft()
            if isinstance(item, Tell):
                self.decide(w.run(item.run_id), item.fact)
            elif isinstance(item, StepEnded):
                if item.succeeded:
                    assert item.output is not None
                    self.succeeded(w, item.held, item.output)
                else:
                    w.open_delta[item.held.run_id] -= 1
                    self.after_end(w, w.run(item.held.run_id), item.held, False, item.error)
            elif isinstance(item, StepDead):
                self.dead(w, item.held, item.error, item.failed)
            elif isinstance(item, FailRunNow):
                self.fail_run(w.run(item.run_id), item.error, settled=False)
            else:
                reopen.reopen_run(w, item.run_id)

    def offer(self, w: Work, run: RunState) -> None:
        """Offer a machine's open signals, oldest first, until one moves it (which offers
        the rest again, to the state it moved to) or none is left."""
        if run.id in w.ended or run.driver is None:
            return
        seq = run.machine()[2]  # read first: it takes the run's lock
        known = w.open_signals.get(run.id)
        if known is None:
            known = w.open_signals[run.id] = w.tx.open_signals(run.id)
        try:
            for signal, name, event_id, payload, _ in list(known):
                self.decide(run, SignalArrived(name, payload, signal, event_id))
                if run.id in w.ended or run.machine()[2] != seq:
                    return
        finally:  # what was settled is no longer open; what was added here stays
            known[:] = [row for row in known if row[0] not in w.settled
                        or w.settled[row[0]][0] == "deferred"]

    # -- settling ----------------------------------------------------------------------------------
    def finish_items(self, w: Work) -> None:
        while w.items_ended:
            batch = sorted(w.items_ended.items())
            w.items_ended.clear()
            for (run_id, node), count in batch:
                if w.tx.item_done(run_id, node, count) == 0:
                    self.decide(w.run(run_id), ItemsEnded(node))

    def settle(self, w: Work, notify: bool = True) -> None:
        tx = w.tx
        # Until nothing moves: a run that ends here may end a parent's step, which moves
        # the parent on (and may end it in turn).
        self.carry_out(w)
        while w.offer or w.items_ended or any(w.open_delta.values()):
            while w.offer:
                self.offer(w, w.run(w.offer.pop()))
            self.finish_items(w)
            for run_id in sorted(w.open_delta):
                delta = w.open_delta.pop(run_id, 0)
                if delta and run_id not in w.ended and tx.add_open(run_id, delta) == 0:
                    self._finish(w, w.run(run_id))
        if notify and w.made_ready:
            tx.notify()

    def _finish(self, w: Work, run: RunState) -> None:
        if run.id in w.undone:
            if w.undone[run.id]:
                w.tx.end_compensation(run.id)
            return
        self.decide(run, Settled())

    # -- ending a run early ------------------------------------------------------------------------
    def abort(self, tx: Tx, run_id: str, status: str, kind: str, message: str,
              quiet: bool = False) -> int:
        """End an unfinished run now (cancelled, or failed past its deadline): running
        attempts are cancelled, nothing else starts. Returns how many steps were ended;
        a run that already ended is refused (or, `quiet`, left alone)."""
        error = {"type": kind, "message": message}
        row = tx.lock_run(run_id)
        if row is None:
            raise UnknownTargetError(f"no run {run_id}")
        if not tx.end_run(run_id, status, codec.dumps({"step": None, **error})):
            if quiet:
                return 0
            raise InputError(f"run {run_id} is already {row['status']}")
        ended = tx.cancel_steps(run_id, codec.dumps({**error, "traceback": None}))
        self._abort_children(tx, run_id, f"its parent run {run_id} was {status}")
        with self.work(tx) as w:
            sagas.compensate(w, w.run(run_id), codec.dumps({"step": None, **error}))
            self.run_ended(w, run_id, None, {**error, "status": status})
        return ended

    def _abort_children(self, tx: Tx, run_id: str, message: str) -> None:
        """End the unfinished children of a run that ended early."""
        for child in children.unfinished(tx, run_id):
            self.abort(tx, child, "cancelled", "Cancelled", message, quiet=True)

    def sweep_queue_timeouts(self, tx: Tx, limit: int = 200) -> int:
        """Ready steps no worker took within their queue_timeout fail (retrying would only
        queue them again); what needs them is blocked, as for any failure."""
        error = codec.dumps({"type": "QueueTimeout", "traceback": None,
                             "message": "ready longer than its queue_timeout with no worker "
                                        "taking it"})
        expired = tx.expire_queued(error, limit)
        if expired:
            with self.work(tx) as w:
                for held in expired:
                    w.open_delta[held.run_id] -= 1
                    self.after_end(w, w.run(held.run_id), held, succeeded=False)
        return len(expired)

    def sweep_deadlines(self, tx: Tx, limit: int = 50) -> int:
        overdue = tx.overdue_runs(limit)
        for run_id in overdue:
            self.abort(tx, run_id, "failed", "DeadlineExceeded",
                       "the run's deadline passed; its unfinished steps were cancelled",
                       quiet=True)
        return len(overdue)

