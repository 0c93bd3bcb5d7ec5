"""The Engine: the Python API over one store (start, status, result, resume, run).

`Engine` is one class made of parts by concern (runtime/facade/): operators' answers,
reads, events and schedules, over `EngineBase`'s settings, per-thread stores and
transactions. Starting runs, waiting for them and serving them in-process live here.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, cast

from .. import codec
from ..errors import InputError, ResultTimeout, RunFailed, UnknownTargetError
from ..statuses import FAILED_RUNS
from .core import runs
from .core.heads import new_run_id
from .facade.answers import Answers
from .facade.base import one_definition
from .facade.events import Events
from .facade.reads import Reads
from .facade.schedules import Schedules
from .process.isolation import refuse_in_main_script
from .process.loader import load_flow
from .process.worker import Worker
from .seam import Definition


class Engine(Answers, Reads, Events, Schedules):
    """`Engine("sqlite:///waypost.db")` or `Engine("postgresql://...")`.

    Safe to share between threads: each thread gets its own connection. `create=False`
    refuses a SQLite database file that does not exist instead of creating it.
    """

    # -- runs ------------------------------------------------------------------------------
    def start(self, definition: Definition | str | None = None,
              input: dict[str, Any] | None = None, *, flow: Definition | str | None = None,
              key: str | None = None, deadline: timedelta | float | None = None) -> str:
        """Create a run and return its id. With `key`: a repeat with the same input returns
        the existing run; a different input raises IdempotencyConflict and creates nothing.
        `deadline` (or the definition's): when it passes, unfinished steps are cancelled and
        the run fails with DeadlineExceeded. `flow=` is the older name of `definition`."""
        named = one_definition(definition, flow, required=True)
        refuse_in_main_script()
        if key is not None:
            codec.check_key(key)
        target = load_flow(named) if isinstance(named, str) else cast(Definition, named)
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
        run_id, _ = self._transact(lambda tx: runs.start(
            self._advancer, tx, target, params, key, chosen, seconds, compiled), request=False)
        self._advancer.stored.add(compiled[0])
        return str(run_id)

    def unserved_tasks(self, definition: Definition) -> list[str]:
        """The definition's tasks (compensations included) that no live worker serves
        now: a run of it would wait for them (a worker started from code that names its
        tasks differently serves none)."""
        needed = {p.task for p in definition.compile()[2].policies()}
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
            if row["status"] in FAILED_RUNS:
                raise RunFailed(run_id, codec.loads(row["error"]))
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeout(f"run {run_id} is still {row['status']} after {timeout}s")
            wait = delay if deadline is None else min(delay, max(0, deadline - time.monotonic()))
            time.sleep(wait)
            delay = min(delay * 1.5, 0.02)

    def run(self, definition: Definition | str | None = None,
            input: dict[str, Any] | None = None, *, flow: Definition | str | None = None,
            key: str | None = None, timeout: float | None = None) -> Any:
        """Start a run and serve it with an in-process worker until it finishes."""
        run_id = self.start(definition, input, flow=flow, key=key)
        with self.serving():
            return self.result(run_id, timeout)

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
