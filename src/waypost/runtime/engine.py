"""The Engine: the Python API over one store (start, status, result, resume, run)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from .. import codec
from ..errors import InputError, ResultTimeout, RunFailed, UnknownTargetError, WaypostError
from ..store import DEFAULT_URL, Store, open_store
from ..vocabulary.topics import emitted
from . import trace
from .core import deliveries, interventions, reopen, schedules, signals
from .core.advance import Advancer
from .core.heads import new_run_id
from .core.limits import WINDOW_MARGIN
from .process.isolation import refuse_in_main_script
from .process.loader import load_flow
from .process.worker import Worker
from .seam import RESERVED_EVENTS, Definition
from .view import FAILED_RUN_STATUSES, letter_view, limit_view, run_view, worker_view


class Engine:
    """`Engine("sqlite:///waypost.db")` or `Engine("postgresql://...")`.

    Safe to share between threads: each thread gets its own connection. `create=False`
    refuses a SQLite database file that does not exist instead of creating it.
    """

    def __init__(self, url: str = DEFAULT_URL, *, lease: float = 30.0, concurrency: int = 8,
                 poll: float = 0.25, create: bool = True) -> None:
        self.url = url
        self.create = create
        self.lease = lease
        self.concurrency = concurrency
        self.poll = poll
        self._local = threading.local()
        self._stores: list[tuple[threading.Thread, Store]] = []
        self._lock = threading.Lock()
        self._advancer = Advancer()
        self._workers: list[Worker] = []
        self._store()  # fail now, not at first use, when the database is unreachable

    def _store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = open_store(self.url, create=self.create)
            with self._lock:
                # A thread that ended (a server's pool lets idle threads go) leaves its
                # connection behind: closed here, or a long-lived server would run the
                # database out of connections.
                gone = [(t, s) for t, s in self._stores if not t.is_alive()]
                self._stores = [(t, s) for t, s in self._stores if t.is_alive()]
                self._stores.append((threading.current_thread(), store))
            for _, old in gone:
                old.close()
        return store

    # -- runs ------------------------------------------------------------------------------
    def start(self, flow: Definition | str, input: dict[str, Any] | None = None, *,
              key: str | None = None, deadline: timedelta | float | None = None) -> str:
        """Create a run and return its id. With `key`: a repeat with the same input returns
        the existing run; a different input raises IdempotencyConflict and creates nothing.
        `deadline` (or the flow's): when it passes, unfinished steps are cancelled and the
        run fails with DeadlineExceeded."""
        refuse_in_main_script()
        if key is not None:
            codec.check_key(key)
        target = load_flow(flow) if isinstance(flow, str) else flow
        params = target.bind_input(input)
        # User code (a flow body) runs here, before the transaction: never while it holds
        # the database's write lock.
        compiled = target.compile()
        chosen = new_run_id()
        seconds = deadline.total_seconds() if isinstance(deadline, timedelta) else deadline
        if seconds is None:
            seconds = target.default_deadline
        if seconds is not None and seconds <= 0:
            raise InputError("a deadline must be in the future")
        run_id, _ = self._transact(lambda tx: self._advancer.start(
            tx, target, params, key, chosen, seconds, compiled), request=False)
        self._advancer.stored.add(compiled[0])
        return str(run_id)

    def unserved_tasks(self, flow: Definition) -> list[str]:
        """The definition's tasks (compensations included) that no live worker serves
        now: a run of it would wait for them (a worker started from code that names its
        tasks differently serves none)."""
        needed = {p.task for p in flow.compile()[2].policies()}
        served = self._store().read(lambda tx: tx.served_tasks(self.lease))
        return sorted(needed - served)

    def resolve(self, run_id: str) -> str:
        """A full run id from an id or a unique prefix of one."""
        if not run_id:
            raise InputError("a run id (or a prefix of one) cannot be empty")
        ids = self._store().read(lambda tx: tx.run_ids_like(run_id))
        if run_id in ids:
            return run_id
        if len(ids) != 1:
            which = "no run" if not ids else "more than one run"
            raise UnknownTargetError(f"{which} matches {run_id!r}")
        return ids[0]

    def status(self, run_id: str) -> str:
        row = self._store().read(lambda tx: tx.get_run(run_id))
        if row is None:
            raise UnknownTargetError(f"no run {run_id}")
        return str(row["status"])

    def result(self, run_id: str, timeout: float | None = None) -> Any:
        """Wait for a run to finish; its output, or RunFailed with the error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            row = self._store().read(lambda tx: tx.get_run(run_id))
            if row is None:
                raise UnknownTargetError(f"no run {run_id}")
            if row["status"] == "succeeded":
                return codec.loads(row["output"])
            if row["status"] in FAILED_RUN_STATUSES:
                raise RunFailed(run_id, codec.loads(row["error"]))
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"run {run_id} is still {row['status']} after {timeout}s")
            wait = delay if deadline is None else min(delay, max(0, deadline - time.monotonic()))
            time.sleep(wait)
            delay = min(delay * 1.5, 0.02)

    def run(self, flow: Definition | str, input: dict[str, Any] | None = None, *,
            key: str | None = None, timeout: float | None = None) -> Any:
        """Start a run and serve it with an in-process worker until it finishes."""
        run_id = self.start(flow, input, key=key)
        with self.serving():
            return self.result(run_id, timeout)

    def resume(self, run_id: str) -> int:
        """Continue a failed run from its failed steps; returns how many were reset."""
        return int(self._transact(lambda tx: reopen.resume(self._advancer, tx, run_id)))

    def cancel(self, run_id: str, reason: str = "cancelled by an operator") -> int:
        """Cancel an unfinished run: running attempts are cancelled (their code sees
        `wp.Cancelled` at its next heartbeat), nothing else starts. Returns how many steps
        were ended."""
        return int(self._transact(
            lambda tx: self._advancer.abort(tx, run_id, "cancelled", "Cancelled", reason)))

    def send(self, target: str, event: str, payload: Any = None, *,
             id: str | None = None) -> dict[str, Any]:
        """Send `event` to a state machine run, addressed by its id (or a unique prefix)
        or its key. The event is stored before this returns; with an `id` it is stored
        once however often it is sent. Returns `run_id`, `event` (its number), `duplicate`,
        and `status` (`consumed` with the `state` that took it, `pending` while an action
        runs or a worker must decide, `deferred`, `ignored` or `unhandled`)."""
        if not isinstance(event, str) or not event:
            raise InputError("an event is named by a non-empty string")
        if event.startswith(RESERVED_EVENTS):
            raise InputError(f"event names starting {RESERVED_EVENTS!r} are waypost's own; "
                             f"{event!r} was not sent")
        if id is not None:
            codec.check_key(id)
        try:
            text = codec.dumps(payload, codec.MAX_DEPTH)
        except TypeError as exc:
            raise InputError(f"the payload of event {event!r} must be JSON: {exc}") from None
        if not target:
            raise InputError("a run id or key cannot be empty")
        return dict(self._transact(
            lambda tx: signals.send(self._advancer, tx, target, event, text, id, _address)))

    def emit(self, topic: str, payload: Any = None, *, key: str | None = None,
             id: str | None = None) -> dict[str, Any]:
        """Publish an event on `topic`: stored, with a delivery started for every handler
        (or triggered definition) whose pattern matches, before this returns. Events with
        the same `key` reach each handler in order; with an `id`, emitting again stores
        nothing (`duplicate`). Returns `id`, `seq`, `duplicate` and `deliveries`. Inside a
        step, use `wp.emit`, which commits with the step's outcome."""
        return self.emit_many([(topic, payload, key, id)])[0]

    def emit_many(self, events: list[tuple[str, Any, str | None, str | None]]
                  ) -> list[dict[str, Any]]:
        """Publish (topic, payload, key, id) events in one transaction: all or none."""
        checked = [emitted(*e) for e in events]  # ids drawn here: a retried commit stores once
        return list(self._transact(lambda tx: self._publish(tx, checked), request=False))

    def _publish(self, tx: Any, events: list[Any]) -> list[dict[str, Any]]:
        with self._advancer.work(tx) as w:
            return deliveries.publish(w, events)

    def replay_topic(self, handler: str, since: float) -> int:
        """Deliver to `handler` (its name) the events stored from `since` (Unix seconds)
        that it has not had, in order, before any new one; returns how many events lie after
        the replay's start (of every topic: the handler takes those its pattern matches)."""
        count = self._transact(lambda tx: tx.replay_subscription(handler, since))
        if count is None:
            raise UnknownTargetError(f"no subscription {handler!r} (a worker with the "
                                     "handler's code registers it when it starts)")
        return int(count)

    def definition(self, fingerprint: str) -> tuple[str, Any]:
        """A stored definition's (kind, body): the graph or states a run was started
        from (its `definition` in `show`)."""
        found = self._store().read(lambda tx: tx.definition(fingerprint))
        if found is None:
            raise UnknownTargetError(f"no definition {fingerprint} in the store")
        return str(found[0]), codec.loads(found[1])

    def metrics(self, lag: float = 30.0, batch: int = 50_000) -> dict[str, Any]:
        """The store's state as `/metrics` shows it (`Tx.metrics`), after rolling the
        totals forward to `lag` seconds ago (at most `batch` steps per call, so a store
        that has never been scraped is caught up over a few scrapes, each brief)."""
        store = self._store()
        store.transact(lambda tx: tx.roll_up_metrics(lag, batch))
        return dict(store.read(lambda tx: tx.metrics()))

    def schedules(self) -> list[dict[str, Any]]:
        """Every stored schedule with its next fire (as `waypost schedules --json`). A
        worker whose code has a scheduled flow stores its schedule when it starts."""
        return list(self._store().read(schedules.listing))

    def pause_schedule(self, name: str) -> str:
        """Stop a schedule firing until `resume_schedule`; returns its full name."""
        return self._pause(name, True)

    def resume_schedule(self, name: str) -> str:
        """Fire a paused schedule again, from its next due time after now: what fell due
        while it was paused is not fired."""
        return self._pause(name, False)

    def _pause(self, name: str, paused: bool) -> str:
        full = self._schedule_named(name)
        if not self._transact(lambda tx: schedules.pause(tx, full, paused)):
            raise UnknownTargetError(f"no schedule {name!r}")
        return full

    def _schedule_named(self, name: str) -> str:
        """A schedule by its full name, or the part after the module (`nightly` for
        `app.jobs:nightly`) when only one has it."""
        names: list[str] = [str(s["name"]) for s in self.schedules()]
        if name in names:
            return name
        found = [n for n in names if n.rpartition(":")[2] == name]
        if len(found) == 1:
            return found[0]
        if found:
            raise InputError(f"{name!r} names several schedules: {', '.join(found)}")
        known = ", ".join(names) or "none: a worker stores its code's when it starts"
        raise UnknownTargetError(f"no schedule {name!r} (known: {known})")

    def trace(self, ident: str) -> dict[str, Any]:
        """Everything an event id, a run id or a correlation id set in motion, as the tree
        `waypost trace --json` prints, with its `status` (complete, in_progress, failed)
        and a one-line `summary`."""
        return self._store().read(lambda tx: trace.trace(tx, ident))

    def complete(self, token: str, output: Any = None) -> str:
        """Finish a step that waits for another system (`completes_externally`) with its
        output; a token works once. Returns the run id."""
        return self._external(token, output, None)

    def fail(self, token: str, error: str) -> str:
        """Fail such a step: it is retried per its task's policy (a new attempt, a new
        token) or, out of retries, fails the run."""
        return self._external(token, None, {"type": "ExternalFailure", "message": error,
                                            "traceback": None})

    def _external(self, token: str, output: Any, error: dict[str, Any] | None) -> str:
        return str(self._transact(lambda tx: self._advancer.external(tx, token, output, error)))

    def _transact(self, fn: Any, request: bool = True) -> Any:
        """One write transaction that may have made steps ready, then a wake-up for this
        engine's in-process workers.

        `request`: the transaction records its result under an id chosen here, before it.
        When a commit is applied but its acknowledgement lost, the store runs `fn` again;
        that retry finds the id and returns what the first try committed, instead of
        failing on its own earlier work ("token already used", "already cancelled")."""
        tries = 0
        request_id = uuid.uuid4().hex

        def work(tx: Any) -> Any:
            nonlocal tries
            tries += 1
            if request and tries > 1:
                done = tx.request_result(request_id)
                if done is not None:
                    return codec.loads(done)
            result = fn(tx)
            if request:
                tx.record_request(request_id, codec.dumps(result))
            return result

        result = self._store().transact(work)
        for worker in self._workers:
            worker.wake()
        return result

    # -- people: gates, escalations, dead letters ---------------------------------------------
    def approve(self, run_id: str, gate: str, by: str | None = None) -> None:
        """Let a run past a `wp.gate` that waits; who and when is recorded."""
        self._transact(lambda tx: interventions.decide_gate(
            self._advancer, tx, run_id, gate, True, by, None))

    def reject(self, run_id: str, gate: str, reason: str, by: str | None = None) -> None:
        """Fail a waiting gate: what follows it never runs, and the run fails (then
        compensates)."""
        self._transact(lambda tx: interventions.decide_gate(
            self._advancer, tx, run_id, gate, False, by, reason))

    def retry_step(self, run_id: str, step: str, by: str | None = None) -> None:
        """Answer a step that needs attention (or a failed compensation): try it again."""
        self._transact(lambda tx: interventions.answer(
            self._advancer, tx, run_id, step, "retry", by))

    def skip_step(self, run_id: str, step: str, output: Any = None,
                  by: str | None = None) -> None:
        """Answer it by treating it as succeeded with `output`: what follows goes on."""
        self._transact(lambda tx: interventions.answer(
            self._advancer, tx, run_id, step, "skip", by, output))

    def fail_step(self, run_id: str, step: str, by: str | None = None) -> None:
        """Answer it by failing it for good (a dead letter; the run fails, then
        compensates)."""
        self._transact(lambda tx: interventions.answer(
            self._advancer, tx, run_id, step, "fail", by))

    def dead_letters(self, status: str | None = "dead", run_id: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
        """Steps that ran out of attempts, newest first (`status=None` for all)."""
        rows = self._store().read(lambda tx: tx.dead_letters(status, run_id, limit))
        return [letter_view(r) for r in rows]

    def dead_letter(self, letter_id: int) -> dict[str, Any]:
        """One dead letter with its input and every attempt's error and traceback."""
        def load(tx: Any) -> tuple[Any, Any]:
            row = tx.dead_letter(letter_id)
            return row, (tx.attempts_of_step(row["step_id"]) if row else None)

        row, attempts = self._store().read(load)
        if row is None:
            raise UnknownTargetError(f"no dead letter {letter_id}")
        return letter_view(row, attempts)

    def replay(self, letter_id: int, input: Any = None, by: str | None = None) -> str:
        """Run a dead letter's step again (with a patched `input`, recorded as such, and
        who replayed it); its run continues from there, as after `resume`. Returns the run
        id."""
        run_id, _ = self._transact(lambda tx: reopen.replay(
            self._advancer, tx, letter_id, input, by))
        return str(run_id)

    def progress(self, run_id: str) -> dict[str, Any]:
        """How far a run is: its status and each step's status and attempts, in two
        indexed reads. What a watcher polls (`/api/v1/runs/{id}/stream`): `show` reads the
        attempts, dead letters, workers and limits besides, which a watcher of a run of
        thousands of steps need not pay for every second."""
        def load(tx: Any) -> dict[str, Any]:
            run = tx.get_run(run_id)
            if run is None:
                raise UnknownTargetError(f"no run {run_id}")
            return {"id": run["id"], "status": run["status"],
                    "steps": [{"name": s["name"], "status": s["status"],
                               "attempts": s["attempts"]} for s in tx.steps_of(run_id)]}

        return dict(self._store().read(load))

    def show(self, run_id: str) -> dict[str, Any]:
        """Everything about a run and its steps, as the JSON `waypost show --json` prints."""
        def load(tx: Any) -> dict[str, Any]:
            run = tx.get_run(run_id)
            if run is None:
                raise UnknownTargetError(f"no run {run_id}")
            steps = tx.steps_of(run_id)
            try:
                driver = self._advancer.driver(tx, run["fingerprint"])
            except (WaypostError, LookupError, ValueError, TypeError, RecursionError):
                driver = None  # shown without what only its definition knows
            machine = driver is not None and driver.takes_signals
            used = sorted({name for policy in (driver.policies() if driver else [])
                           for name in policy.uses})
            limits = {r.name: limit_view(r, granted, in_use) for r, granted, in_use
                      in tx.limits_in_use(WINDOW_MARGIN, used)} if used else {}
            owners = sorted({s["lease_owner"] for s in steps
                             if s["status"] == "running" and s["lease_owner"]})
            holders = tx.workers_named(owners) if owners else {}
            # Workers heartbeat every lease/3; one silent for a whole lease is gone.
            return {"run": run, "steps": steps, "attempts": tx.attempts_of(run_id),
                    "holders": holders, "now": tx.now() if owners else None,
                    "served": tx.served_tasks(self.lease), "driver": driver,
                    "letters": tx.dead_letters(None, run_id, 1000),
                    "budgets": tx.retry_budgets(sorted({s["task"] for s in steps})),
                    "limits": limits,
                    "transitions": tx.transitions(run_id, 100_000) if machine else None,
                    "events": tx.events_of(run_id, 100_000) if machine else None,
                    "others": _other_code(tx.workers(), run, tx.now(), self.lease)
                    if machine else None,
                    "parent": tx.parent_of(run_id), "children": tx.children_of(run_id),
                    "trigger": None if run["trigger_event"] is None
                    else tx.topic_event(seq=int(run["trigger_event"]))}

        return run_view(**self._store().read(load))

    def limits(self) -> list[dict[str, Any]]:
        """Every limit workers have stored: its definition, the attempts holding a slot
        now (`in_use`), the grants in its current rate window (`granted`), and `full`:
        what stops another attempt from starting now."""
        rows = self._store().read(lambda tx: tx.limits_in_use(WINDOW_MARGIN))
        return [limit_view(row, granted, in_use) for row, granted, in_use in rows]

    def workers(self) -> list[dict[str, Any]]:
        """The live workers: those that renewed within their own lease, as the JSON
        `waypost workers --json` prints."""
        rows, now = self._store().read(lambda tx: (tx.workers(), tx.now()))
        return [worker_view(w, now) for w in rows
                if now - w.heartbeat_at <= (w.lease or self.lease)]

    def runs(self, status: str | None = None, flow: str | None = None,
             limit: int = 50, **filters: Any) -> list[dict[str, Any]]:
        """Newest runs first, with their step counts. `filters` are `Tx.list_runs`'s: kind,
        key, since and until (Unix seconds) and search (inside the input)."""
        return self.runs_page(status, flow, limit, **filters)[0]

    def runs_page(self, status: str | None = None, flow: str | None = None,
                  limit: int = 50, cursor: str | None = None,
                  **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        """A page of `runs`, and the cursor of the next page (None: this is the last).
        Paged by keyset (the last run's creation time and id), so a page costs the same
        however deep it is, and runs created meanwhile never shift it."""
        before = _cursor(cursor)

        def load(tx: Any) -> tuple[Any, dict[str, tuple[int, int, int]]]:
            rows = tx.list_runs(status, flow, limit + 1, before=before, **filters)
            return rows, tx.step_counts([r["id"] for r in rows[:limit]])

        rows, counts = self._store().read(load)
        views = []
        for r in rows[:limit]:
            view = run_view(r, None, None)
            done, total, suspicious = counts.get(r["id"], (0, 0, 0))
            view["steps_succeeded"], view["steps_total"] = done, total
            view["steps_suspicious"] = suspicious
            views.append(view)
        last = rows[limit - 1] if len(rows) > limit else None
        return views, None if last is None else f"{last['created_at']!r}~{last['id']}"

    # -- embedded workers ---------------------------------------------------------------------
    def worker(self, **options: Any) -> Worker:
        settings = {"concurrency": self.concurrency, "lease": self.lease, "poll": self.poll}
        return Worker(self.url, **{**settings, **options})

    def serving(self, **options: Any) -> _Serving:
        """`with engine.serving(): ...` runs an in-process worker for the block."""
        return _Serving(self, self.worker(**options))

    def close(self) -> None:
        for worker in list(self._workers):
            worker.stop()
        with self._lock:
            for _, store in self._stores:
                store.close()
            self._stores.clear()
        self._local = threading.local()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Serving:
    def __init__(self, engine: Engine, worker: Worker) -> None:
        self.engine = engine
        self.worker = worker

    def __enter__(self) -> Worker:
        self.worker.start()
        self.engine._workers.append(self.worker)
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.engine._workers.remove(self.worker)
        self.worker.stop()


def _address(tx: Any, target: str) -> str:
    """A run named by its id, its key, or a unique prefix of its id."""
    if tx.run_head(target) is not None:
        return target
    by_key = tx.run_id_by_key(target)
    if by_key is not None:
        return str(by_key)
    ids = tx.run_ids_like(target)
    if len(ids) != 1:
        which = "no run" if not ids else "more than one run"
        raise UnknownTargetError(f"{which} matches {target!r} (as a run id, a prefix of one, "
                                 "or a key)")
    return str(ids[0])


def _other_code(workers: list[Any], run: dict[str, Any], now: float,
                lease: float) -> list[dict[str, str]]:
    """Live workers whose code defines the run's machine differently: they cannot evaluate
    its guards (the run keeps the definition it started with)."""
    return [{"worker": w.id, "fingerprint": w.definitions[run["flow"]]} for w in workers
            if now - w.heartbeat_at <= (w.lease or lease)
            and w.definitions.get(run["flow"], run["fingerprint"]) != run["fingerprint"]]


def _cursor(text: str | None) -> tuple[float, str] | None:
    if text is None:
        return None
    at, _, run_id = text.partition("~")
    try:
        if run_id:
            return float(at), run_id
    except ValueError:
        pass
    raise InputError(f"cursor {text!r:.60} is not one a page of runs gave")
