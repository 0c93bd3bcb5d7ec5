"""Transactional advance: an outcome and everything it causes commit together.

Every function here runs inside the caller's transaction. Recording a step's outcome,
making its successors ready, expanding a map, blocking what a failure orphans and
finishing the run are one commit, so there is never a moment where a step is done but
its successors are not scheduled. A crash before the commit loses the outcome and the
step runs again (same idempotency key); a crash after it loses nothing.

Exactly once, argued: an outcome is written only by `tx.succeed` / `tx.end_attempt`,
which match the attempt's lease token on a step still `running`. The first matching write
moves the step out of `running` and clears the token, so a second report of the same
attempt (a retry of this transaction after a lost commit, a late worker after a lease
takeover) matches nothing and is discarded.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

from .. import codec
from ..dag.driver import (
    LOST_ATTEMPTS_LIMIT,
    Broken,
    DagDriver,
    Expand,
    Ready,
    Retry,
    Wait,
    encode_input,
)
from ..dag.flow import Flow
from ..dag.graph import Graph
from ..dag.waits import due_at
from ..errors import IdempotencyConflict, InputError, UnknownTargetError
from ..store.protocol import Tx
from ..store.records import HeldStep, NewStep
from .outcome import Outcome


def new_run_id() -> str:
    """Time-ordered, so listings sort by age and ids can be typed by prefix."""
    return f"{int(time.time() * 1000):012x}{os.urandom(6).hex()}"


def step_key(run_id: str, step: str) -> str:
    return hashlib.sha256(f"{run_id}/{step}".encode()).hexdigest()[:32]


@dataclass
class RunInfo:
    id: str
    driver: DagDriver
    params: dict[str, Any]


@dataclass
class Pending:
    """Bookkeeping of one transaction, applied once at its end."""

    tx: Tx
    open_delta: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    runs: dict[str, RunInfo] = field(default_factory=dict)
    made_ready: int = 0
    # Items of map nodes that ended here, counted per (run, node) and applied in one
    # statement per node: a fan-out then costs one parent update per batch, not per item.
    items_ended: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    # Outputs recorded in this transaction, by (run, step name): a successor whose inputs
    # are all here needs no read (in a chain, that is every step).
    known: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Runs in which a compensation step ended here, and whether all that ended succeeded:
    #: such a run with nothing left open is compensated (or waits for an operator).
    undone: dict[str, bool] = field(default_factory=dict)
    _now: float | None = None

    def now(self) -> float:
        if self._now is None:
            self._now = self.tx.now()
        return self._now


class Advancer:
    """Applies the DAG driver's decisions through the store's verbs."""

    def __init__(self, cache_size: int = 10_000) -> None:
        self._drivers: dict[str, DagDriver] = {}
        self._runs: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()  # an Engine shares one Advancer between threads
        #: Definitions known to be committed in this store; the caller adds a fingerprint
        #: once the transaction that stored it has committed.
        self.stored: set[str] = set()

    # -- loading --------------------------------------------------------------------------
    def _driver(self, tx: Tx, fingerprint: str) -> DagDriver:
        driver = self._drivers.get(fingerprint)
        if driver is None:
            body = tx.definition(fingerprint)
            if body is None:
                raise UnknownTargetError(f"no definition {fingerprint} in the store")
            driver = self._drivers[fingerprint] = DagDriver(Graph.from_json(codec.loads(body)))
        return driver

    def run_info(self, tx: Tx, run_id: str) -> RunInfo:
        head = self._runs.get(run_id)
        if head is None:
            row = tx.run_head(run_id)
            if row is None:
                raise UnknownTargetError(f"no run {run_id}")
            head = (row[0], codec.loads(row[1]))
            self._remember(run_id, head)
        return RunInfo(run_id, self._driver(tx, head[0]), head[1])

    def _remember(self, run_id: str, head: tuple[str, dict[str, Any]]) -> None:
        """Runs' definitions and inputs never change, so they are cached (bounded)."""
        with self._lock:
            self._runs[run_id] = head
            if len(self._runs) > self._cache_size:
                self._runs.popitem(last=False)

    # -- starting ---------------------------------------------------------------------------
    def start(self, tx: Tx, flow: Flow[Any, Any], params: dict[str, Any],
              key: str | None, run_id: str | None = None,
              deadline: float | None = None) -> tuple[str, bool]:
        """Create a run, or return the run that already has `key` with the same input.

        Pass a `run_id` chosen outside the transaction: if a first try's commit went
        through unacknowledged, the retry finds that run instead of making a second."""
        graph = flow.graph
        fingerprint = graph.fingerprint()
        driver = self._drivers.setdefault(fingerprint, DagDriver(graph))
        if fingerprint not in self.stored:
            tx.put_definition(fingerprint, flow.name, "dag", graph.body())
        text = codec.dumps(params)
        checksum = codec.checksum(text)
        run_id = run_id or new_run_id()
        steps = driver.steps()
        if not tx.insert_run(run_id, flow.name, fingerprint, key, text, checksum, len(steps)):
            if tx.run_head(run_id) is not None:
                return run_id, False
            assert key is not None
            existing, existing_flow, existing_checksum = tx.run_by_key(key)
            if existing_flow == flow.name and existing_checksum == checksum:
                return existing, False
            raise IdempotencyConflict(key, existing)
        # Root tasks need nothing but the input: insert them ready, saving an update each.
        later = []
        for step in steps:
            if step.waiting_on == 0:
                action = driver.activate(step.name, {}, params)
                if isinstance(action, Ready):
                    step.status, step.input, step.input_checksum = \
                        "ready", action.input, action.checksum
                else:
                    later.append(step.name)
        tx.insert_steps(run_id, steps, [step_key(run_id, s.name) for s in steps])
        if deadline is not None:
            tx.set_deadline(run_id, deadline)
        self._remember(run_id, (fingerprint, params))
        pending = Pending(tx, made_ready=sum(s.status == "ready" for s in steps))
        self._activate(pending, RunInfo(run_id, driver, params), later)
        self.settle(pending)
        return run_id, True

    # -- outcomes --------------------------------------------------------------------------
    def record(self, tx: Tx, outcomes: list[Outcome],
               notify: bool = True) -> tuple[list[bool], int]:
        """Record outcomes (one transaction, any number of runs). Returns which were
        accepted and how many steps became ready. A worker that will claim in the same
        transaction passes notify=False and wakes others only for what it leaves."""
        pending = Pending(tx)
        accepted: dict[int, bool] = {}
        ordered = sorted(outcomes, key=lambda o: (o.run_id, o.step_id))
        for o in ordered:
            if o.handoff is not None:
                accepted[id(o)] = tx.hand_off(o.step_id, o.token, o.handoff)
        successes = [o for o in ordered if o.ok and o.handoff is None]
        held_steps = tx.succeed_many([(o.step_id, o.token, o.output or "") for o in successes])
        for o, held in zip(successes, held_steps, strict=True):
            accepted[id(o)] = held is not None
            if held is not None:
                self.succeeded(pending, held, o.output or "null")
        for o in ordered:
            if not o.ok:
                accepted[id(o)] = self._record_failure(pending, o)
        self.finish_items(pending)
        self.settle(pending, notify)
        return [accepted[id(o)] for o in outcomes], pending.made_ready

    def external(self, tx: Tx, token: str, output: Any = None,
                 error: dict[str, Any] | None = None) -> str:
        """Complete (or fail) a step that waits for another system; a token works once.
        Returns the run id."""
        try:
            step_id = int(token.split(".")[1])
        except (IndexError, ValueError):
            raise InputError(f"{token!r} is not a waypost completion token") from None
        pending = Pending(tx)
        if error is None:
            text = codec.dumps(output)
            held = tx.complete_external(step_id, token, text)
            if held is not None:
                self.succeeded(pending, held, text)
        else:
            held = tx.fail_external(step_id, token, codec.dumps(error))
            if held is not None:
                self._after_failure(pending, held, codec.dumps(error), "failed", False)
        if held is None:
            raise InputError(f"completion token {token} was already used, belongs to an "
                             "attempt that ended, or does not exist")
        self.finish_items(pending)
        self.settle(pending)
        return held.run_id

    def succeeded(self, p: Pending, held: HeldStep, output: str) -> None:
        run = self.run_of(p, held.run_id)
        p.known[(run.id, held.name)] = output
        p.open_delta[run.id] -= 1
        self.after_end(p, run, held, succeeded=True)

    def finish_items(self, p: Pending) -> None:
        for (run_id, node), count in sorted(p.items_ended.items()):
            if p.tx.item_done(run_id, node, count) == 0:
                self._gather(p, self.run_of(p, run_id), node)

    def _record_failure(self, p: Pending, o: Outcome) -> bool:
        error = codec.dumps(o.error)
        held = p.tx.end_attempt(o.step_id, o.token, o.kind, error, o.expired)
        if held is None:
            return False
        if o.kind == "lost":
            run = self.run_of(p, held.run_id)
            lost = run.driver.on_lost(p.tx.lost_attempts(held.id) - 1)
            if isinstance(lost, Retry):
                p.tx.retry_later(held.id, lost.delay, error, extra_attempt=True)
                return True
            error = codec.dumps({**(o.error or {}), "message": (
                f"{held.name} lost its worker {LOST_ATTEMPTS_LIMIT} times; it may be what "
                "crashes it (memory, a native library): see the workers' logs")})
            self.dead(p, held, error)
            return True
        self._after_failure(p, held, error, o.kind, o.fatal)
        return True

    def _after_failure(self, p: Pending, held: HeldStep, error: str, kind: str,
                       fatal: bool) -> None:
        """Ask an operator, retry per the task's policy (and its retry budget), or the
        step is dead."""
        run = self.run_of(p, held.run_id)
        options = run.driver.options(held.node, held.kind)
        if options.get("escalate_after") and run.driver.escalates(
                options, p.tx.failed_attempts(held.id), fatal):
            p.tx.escalate(held.id, error, options.get("escalation_timeout"))
            p.tx.attention(run.id)
            return
        decision = run.driver.on_failure(options, held.attempts, held.max_attempts, fatal)
        if not isinstance(decision, Retry):
            self.dead(p, held, error)
            return
        budget = options.get("retry_budget")
        task = self._task_of(run, held)
        if budget and not p.tx.spend_retry(task, budget[0], budget[1]):
            detail = codec.loads(error) or {}
            per = f"{budget[0]} per {budget[1]:g}s"
            refused = {**detail, "type": "RetryBudgetExhausted",
                       "message": f"retry refused: the retry budget of task {task} ({per}) is "
                                  f"spent; last error: {detail.get('type')}: "
                                  f"{detail.get('message')}"}
            self.dead(p, held, codec.dumps(refused))
            return
        p.tx.retry_later(held.id, decision.delay, error)

    @staticmethod
    def _task_of(run: RunInfo, held: HeldStep) -> str:
        node = run.driver.graph.nodes[held.node]
        return str(node.options["compensate"]) if held.kind == "undo" else node.task

    def dead(self, p: Pending, held: HeldStep, error: str) -> None:
        """Out of attempts: the step fails and is kept as a dead letter, with its input,
        for `waypost dlq replay`."""
        run = self.run_of(p, held.run_id)
        p.tx.fail(held.id, error)
        p.tx.add_dead_letter(held.id, error)
        p.open_delta[run.id] -= 1
        self.after_end(p, run, held, succeeded=False)

    def run_of(self, p: Pending, run_id: str) -> RunInfo:
        run = p.runs.get(run_id)
        if run is None:
            run = p.runs[run_id] = self.run_info(p.tx, run_id)
        return run

    def after_end(self, p: Pending, run: RunInfo, held: HeldStep, succeeded: bool) -> None:
        if held.kind == "undo":
            p.undone[run.id] = p.undone.get(run.id, True) and succeeded
            if succeeded:
                p.tx.next_compensation(run.id, (held.map_index or 0) + 1)
            else:  # the chain stops here, in front of an operator
                p.tx.set_run_status(run.id, "compensation_failed", ["compensating"])
        elif held.kind == "item":
            p.items_ended[(run.id, held.node)] += 1
        elif succeeded:
            self._release(p, run, held.node)
        else:
            self._block(p, run, held.node)

    def _gather(self, p: Pending, run: RunInfo, node: str) -> None:
        result = run.driver.gather(node, p.tx.map_items(run.id, node))
        p.open_delta[run.id] -= 1
        if isinstance(result, Broken):
            p.tx.end_node(run.id, node, "failed", None, codec.dumps(result.error))
            self._block(p, run, node)
        else:
            text = codec.dumps(result)
            p.tx.end_node(run.id, node, "succeeded", text, None)
            p.known[(run.id, node)] = text
            self._release(p, run, node)

    def _release(self, p: Pending, run: RunInfo, node: str) -> None:
        successors = run.driver.graph.successors[node]
        if successors:
            self._activate(p, run, p.tx.release(run.id, successors))

    def _block(self, p: Pending, run: RunInfo, node: str) -> None:
        p.open_delta[run.id] -= p.tx.block(run.id, run.driver.graph.downstream(node))

    def _activate(self, p: Pending, run: RunInfo, names: list[str]) -> None:
        tx = p.tx
        for name in names:
            deps = run.driver.graph.nodes[name].data_deps
            raw = {d: p.known[(run.id, d)] for d in deps if (run.id, d) in p.known}
            if len(raw) < len(deps):
                raw.update(tx.outputs(run.id, [d for d in deps if d not in raw]))
            outputs = {k: codec.loads(v) for k, v in raw.items()}
            action = run.driver.activate(name, outputs, run.params)
            if isinstance(action, Wait):
                tx.make_waiting(run.id, name, due_at(action.options, p.now()))
                tx.mark_runs_running([run.id])  # its clock is ticking, even if no task ran
            elif isinstance(action, Ready):
                tx.make_ready(run.id, name, action.input, action.checksum)
                p.made_ready += 1
            elif isinstance(action, Expand):
                children = action.children
                tx.start_map(run.id, name, len(children))
                if children:
                    tx.insert_steps(run.id, children, [step_key(run.id, c.name) for c in children])
                    p.open_delta[run.id] += len(children)
                    p.made_ready += len(children)
                else:
                    self._gather(p, run, name)
            else:
                tx.end_node(run.id, name, "failed", None, codec.dumps(action.error))
                p.open_delta[run.id] -= 1
                self._block(p, run, name)

    def settle(self, p: Pending, notify: bool = True) -> None:
        tx = p.tx
        for run_id in sorted(p.open_delta):
            delta = p.open_delta[run_id]
            if delta and tx.add_open(run_id, delta) == 0:
                self._finish(p, self.run_of(p, run_id))
        if notify and p.made_ready:
            tx.notify()

    def _finish(self, p: Pending, run: RunInfo) -> None:
        if run.id in p.undone:
            if p.undone[run.id]:
                p.tx.end_compensation(run.id)
            return
        failure = p.tx.first_failure(run.id)
        if failure is not None:
            step, error = failure
            detail = codec.loads(error) or {}
            summary = codec.dumps({"step": step, "type": detail.get("type"),
                                   "message": detail.get("message")})
            if not self._compensate(p, run, summary):
                p.tx.finish_run(run.id, "failed", None, summary)
            return
        deps = run.driver.output_deps()
        outputs = {k: codec.loads(v) for k, v in p.tx.outputs(run.id, deps).items()}
        p.tx.finish_run(run.id, "succeeded", codec.dumps(run.driver.output(outputs, run.params)),
                        None)

    def _compensate(self, p: Pending, run: RunInfo, error: str) -> bool:
        """Start undoing a failed run: one compensation step per succeeded step that has
        one, run one after another, most recently finished first. False if nothing needs
        undoing."""
        undo_tasks = run.driver.compensations
        done = p.tx.compensable(run.id, list(undo_tasks)) if undo_tasks else []
        if not done:
            return False
        steps = []
        for i, d in enumerate(done):
            call = codec.loads(d["input"])
            text, checksum = encode_input([codec.loads(d["output"]), *call["args"]],
                                          call["kwargs"])
            options = run.driver.options(d["node"], "undo")
            steps.append(NewStep(
                name=f"compensate:{d['name']}", node=d["node"], task=undo_tasks[d["node"]],
                kind="undo", status="ready" if i == 0 else "pending", waiting_on=min(i, 1),
                max_attempts=options["max_attempts"], timeout=options["timeout"], input=text,
                input_checksum=checksum, map_index=i, heartbeat=options.get("heartbeat"),
                queue_timeout=options.get("queue_timeout")))
        p.tx.insert_steps(run.id, steps, [step_key(run.id, s.name) for s in steps])
        p.tx.start_compensation(run.id, error, len(steps))
        p.made_ready += 1
        return True

    # -- ending a run early ----------------------------------------------------------------
    def abort(self, tx: Tx, run_id: str, status: str, kind: str, message: str,
              quiet: bool = False) -> int:
        """End an unfinished run now (cancelled, or failed past its deadline): running
        attempts are cancelled, nothing else starts. Returns how many steps were ended;
        a run that already ended is refused (or, `quiet`, left alone)."""
        error = {"type": kind, "message": message}
        if not tx.end_run(run_id, status, codec.dumps({"step": None, **error})):
            row = tx.get_run(run_id)
            if row is None:
                raise UnknownTargetError(f"no run {run_id}")
            if quiet:
                return 0
            raise InputError(f"run {run_id} is already {row['status']}")
        ended = tx.cancel_steps(run_id, codec.dumps({**error, "traceback": None}))
        p = Pending(tx)
        self._compensate(p, self.run_of(p, run_id), codec.dumps({"step": None, **error}))
        self.settle(p)
        return ended

    def sweep_queue_timeouts(self, tx: Tx, limit: int = 200) -> int:
        """Ready steps no worker took within their queue_timeout fail (retrying would only
        queue them again); what needs them is blocked, as for any failure."""
        error = codec.dumps({"type": "QueueTimeout", "traceback": None,
                             "message": "ready longer than its queue_timeout with no worker "
                                        "taking it"})
        expired = tx.expire_queued(error, limit)
        if expired:
            p = Pending(tx)
            for held in expired:
                run = self.run_of(p, held.run_id)
                p.open_delta[run.id] -= 1
                self.after_end(p, run, held, succeeded=False)
            self.finish_items(p)
            self.settle(p)
        return len(expired)

    def sweep_deadlines(self, tx: Tx, limit: int = 50) -> int:
        overdue = tx.overdue_runs(limit)
        for run_id in overdue:
            self.abort(tx, run_id, "failed", "DeadlineExceeded",
                       "the run's deadline passed; its unfinished steps were cancelled",
                       quiet=True)
        return len(overdue)

    # -- resume ----------------------------------------------------------------------------
    def resume(self, tx: Tx, run_id: str, retry: bool = False) -> int:
        """Reopen a failed run: failed steps start again, succeeded steps stay done.
        Returns how many steps were reset. `retry`: this transaction is being tried again,
        so a run that is no longer failed may be this resume's own unacknowledged work."""
        row = tx.get_run(run_id)
        if row is None:
            raise UnknownTargetError(f"no run {run_id}")
        if retry and row["status"] not in ("failed", "cancelled"):
            return 0
        if row["status"] not in ("failed", "cancelled"):
            raise InputError(f"run {run_id} is {row['status']}; only a failed run can resume "
                             "(or a cancelled one)")
        run = self.run_info(tx, run_id)
        graph = run.driver.graph
        steps = tx.steps_of(run_id)
        succeeded = {s["name"] for s in steps if s["status"] == "succeeded"}
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in steps:
            if s["kind"] == "item":
                items[s["node"]].append(s)
        reset, to_activate, open_steps = 0, [], 0
        for s in steps:
            status = s["status"]
            if status in ("succeeded", "pending", "ready", "running", "waiting",
                          "needs_attention"):
                open_steps += status != "succeeded"
                continue
            reset += 1
            open_steps += 1
            budget = s["attempts"] + (graph.nodes[s["node"]].options["max_attempts"])
            if s["kind"] == "item" or (s["kind"] == "task" and status == "failed" and s["input"]):
                tx.reset_step(s["id"], "ready", 0, budget)
            elif s["kind"] == "map" and items.get(s["name"]):
                waiting = sum(i["status"] != "succeeded" for i in items[s["name"]])
                tx.reset_step(s["id"], "running", waiting, budget)
            else:
                waiting = sum(d not in succeeded for d in graph.nodes[s["name"]].deps)
                tx.reset_step(s["id"], "pending", waiting, budget)
                if waiting == 0:
                    to_activate.append(s["name"])
        tx.letters_replayed([s["id"] for s in steps if s["status"] == "failed"], None)
        tx.reopen_run(run_id, open_steps)
        p = Pending(tx, made_ready=reset)
        self._activate(p, run, to_activate)
        self.settle(p)
        return reset
