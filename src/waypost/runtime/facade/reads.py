"""What the CLI, the API and the dashboard read: runs, their progress, dead letters,
limits, workers, stored definitions, metrics and traces. Each is one read transaction
and changes nothing (but `metrics`, which rolls its totals forward first)."""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import InputError, UnknownTargetError, WaypostError
from ...store.protocol import Tx
from ...store.records import RunRow, WorkerRow
from ..core.limits import WINDOW_MARGIN
from . import trace
from .base import EngineBase, one_definition
from .view import letter_view, limit_view, run_view, worker_view


class Reads(EngineBase):
    # -- one run ------------------------------------------------------------------------------
    def progress(self, run_id: str) -> dict[str, Any]:
        """How far a run is: its status and each step's status and attempts, in two
        indexed reads. What a watcher polls (`/api/v1/runs/{id}/stream`): `show` reads the
        attempts, dead letters, workers and limits besides, which a watcher of a run of
        thousands of steps need not pay for every second."""
        def load(tx: Tx) -> dict[str, Any]:
            run = tx.get_run(run_id)
            if run is None:
                raise UnknownTargetError(f"no run {run_id}")
            return {"id": run["id"], "status": run["status"],
                    "steps": [{"name": s["name"], "status": s["status"],
                               "attempts": s["attempts"]} for s in tx.steps_of(run_id)]}

        return dict(self._store().read(load))

    def show(self, run_id: str) -> dict[str, Any]:
        """Everything about a run and its steps, as the JSON `waypost show --json` prints."""
        def load(tx: Tx) -> dict[str, Any]:
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
                    "events": tx.signals_of(run_id, 100_000) if machine else None,
                    "others": _other_code(tx.workers(), run, tx.now(), self.lease)
                    if machine else None,
                    "parent": tx.parent_of(run_id), "children": tx.children_of(run_id),
                    "trigger": None if run["trigger_event"] is None
                    else tx.topic_event(seq=int(run["trigger_event"]))}

        return run_view(**self._store().read(load))

    def definition(self, fingerprint: str) -> tuple[str, Any]:
        """A stored definition's (kind, body): the graph or states a run was started
        from (its `definition` in `show`)."""
        found = self._store().read(lambda tx: tx.definition(fingerprint))
        if found is None:
            raise UnknownTargetError(f"no definition {fingerprint} in the store")
        return str(found[0]), codec.loads(found[1])

    def trace(self, ident: str) -> dict[str, Any]:
        """Everything an event id, a run id or a correlation id set in motion, as the tree
        `waypost trace --json` prints, with its `status` (complete, in_progress, failed)
        and a one-line `summary`."""
        return self._store().read(lambda tx: trace.trace(tx, ident))

    # -- lists --------------------------------------------------------------------------------
    def runs(self, status: str | None = None, definition: str | None = None,
             limit: int = 50, *, flow: str | None = None,
             **filters: Any) -> list[dict[str, Any]]:
        """Newest runs first, with their step counts. `filters` are `Tx.list_runs`'s: kind,
        key, since and until (Unix seconds) and search (inside the input); `flow=` is the
        older name of `definition`."""
        return self.runs_page(status, definition, limit, flow=flow, **filters)[0]

    def runs_page(self, status: str | None = None, definition: str | None = None,
                  limit: int = 50, cursor: str | None = None, *, flow: str | None = None,
                  **filters: Any) -> tuple[list[dict[str, Any]], str | None]:
        """A page of `runs`, and the cursor of the next page (None: this is the last).
        Paged by keyset (the last run's creation time and id), so a page costs the same
        however deep it is, and runs created meanwhile never shift it."""
        before = _cursor(cursor)
        named = one_definition(definition, flow)

        def load(tx: Tx) -> tuple[list[RunRow], dict[str, tuple[int, int, int]]]:
            rows = tx.list_runs(status, named, limit + 1, before=before, **filters)
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

    def dead_letters(self, status: str | None = "dead", run_id: str | None = None,
                     limit: int = 50) -> list[dict[str, Any]]:
        """Steps that ran out of attempts, newest first (`status=None` for all)."""
        rows = self._store().read(lambda tx: tx.dead_letters(status, run_id, limit))
        return [letter_view(r) for r in rows]

    def dead_letter(self, letter_id: int) -> dict[str, Any]:
        """One dead letter with its input and every attempt's error and traceback."""
        def load(tx: Tx) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
            row = tx.dead_letter(letter_id)
            return row, (tx.attempts_of_step(row["step_id"]) if row else None)

        row, attempts = self._store().read(load)
        if row is None:
            raise UnknownTargetError(f"no dead letter {letter_id}")
        return letter_view(row, attempts)

    # -- the system ---------------------------------------------------------------------------
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

    def metrics(self, lag: float = 30.0, batch: int = 50_000) -> dict[str, Any]:
        """The store's state as `/metrics` shows it (`Tx.metrics`), after rolling the
        totals forward to `lag` seconds ago (at most `batch` steps per call, so a store
        that has never been scraped is caught up over a few scrapes, each brief)."""
        store = self._store()
        store.transact(lambda tx: tx.roll_up_metrics(lag, batch))
        return dict(store.read(lambda tx: tx.metrics()))


def _other_code(workers: list[WorkerRow], run: RunRow, now: float,
                lease: float) -> list[dict[str, str]]:
    """Live workers whose code defines the run's machine differently: they cannot evaluate
    its guards (the run keeps the definition it started with)."""
    return [{"worker": w.id, "fingerprint": w.definitions[run["definition"]]} for w in workers
            if now - w.heartbeat_at <= (w.lease or lease)
            and w.definitions.get(run["definition"], run["fingerprint"]) != run["fingerprint"]]


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
