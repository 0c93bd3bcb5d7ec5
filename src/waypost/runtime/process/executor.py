"""Where attempts run: sync bodies in a thread pool, `async def` bodies on one event loop
thread, and `isolation="process"` bodies in a child process watched from a pool thread
(isolation.py); all are wrapped so the worker loop sees a single kind of future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

from ...store.records import ClaimedStep
from ...vocabulary.context import Heart
from ...vocabulary.task import Task
from ..core.outcome import Outcome
from .bodies import run_async, run_sync
from .isolation import ChildAttempt


class Executor:
    """A thread pool for sync task bodies and an event loop for async ones."""

    def __init__(self, concurrency: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="waypost-task")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._children: set[ChildAttempt] = set()
        self._children_lock = threading.Lock()

    def submit(self, task: Task[Any, Any], step: ClaimedStep, heart: Heart,
               ) -> tuple[concurrent.futures.Future[Outcome], ChildAttempt | None]:
        """The attempt's future, and for a process-isolated task the handle that kills it."""
        if task.isolation == "process":
            return self._submit_child(task, step, heart)
        if task.is_async:
            return asyncio.run_coroutine_threadsafe(run_async(task, step, heart),
                                                    self._event_loop()), None
        return self._pool.submit(run_sync, task, step, heart), None

    def _submit_child(self, task: Task[Any, Any], step: ClaimedStep, heart: Heart,
                      ) -> tuple[concurrent.futures.Future[Outcome], ChildAttempt]:
        child = ChildAttempt(task, step, heart)
        with self._children_lock:
            self._children.add(child)

        def forget(_: concurrent.futures.Future[Outcome]) -> None:
            with self._children_lock:
                self._children.discard(child)

        future = self._pool.submit(child.run)
        future.add_done_callback(forget)
        return future, child

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self._loop.run_forever,
                                                 name="waypost-async", daemon=True)
            self._loop_thread.start()
        return self._loop

    def shutdown(self) -> None:
        with self._children_lock:
            children = list(self._children)
        for child in children:  # a pool thread waits on each: they must end
            child.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        loop, thread = self._loop, self._loop_thread
        if loop is None or thread is None:
            return

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancellations have been delivered

        loop.call_soon_threadsafe(cancel_all)
        thread.join(5)
        if not thread.is_alive():
            loop.close()
