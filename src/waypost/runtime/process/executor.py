"""Runs one attempt of a task body and turns whatever happens into an `Outcome`.

Sync bodies run in a thread pool, `async def` bodies on one event loop thread, and
`isolation="process"` bodies in a child process watched from a pool thread (isolation.py);
all are wrapped here so the worker loop sees a single kind of future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import threading
import traceback
from typing import TYPE_CHECKING, Any

from ... import codec
from ...errors import Fatal
from ...store.records import ClaimedStep
from ...vocabulary.context import Context, Heart
from ...vocabulary.outbox import outbox
from ...vocabulary.task import Task
from ...vocabulary.topics import Emitted
from ..core.outcome import Outcome

if TYPE_CHECKING:
    from .isolation import ChildAttempt


def error_of(exc: BaseException, own: str = __file__) -> dict[str, Any]:
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == own:
        tb = tb.tb_next  # start the traceback at the user's code, not ours
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, tb)),
    }


def _call_args(task: Task[Any, Any], step: ClaimedStep,
               heart: Heart) -> tuple[list[Any], dict[str, Any]]:
    try:
        data = codec.loads(step.input)
        args, kwargs = list(data["args"]), dict(data["kwargs"])
    except (ValueError, KeyError, TypeError) as exc:  # it would decode no better next time
        raise Fatal(f"the step's stored input cannot be decoded: {exc}") from exc
    if task.context_param:
        kwargs[task.context_param] = Context(
            run_id=step.run_id, step=step.name, attempt=step.attempts,
            idempotency_key=step.idempotency_key,
            completion_token=completion_token(step) if task.completes_externally else None,
            _heart=heart)
    return args, kwargs


def completion_token(step: ClaimedStep) -> str:
    """The token the claim drew for this attempt of a `completes_externally` step: it
    completes this attempt and no other, and no other step has one."""
    if step.completion_token is None:
        raise RuntimeError(f"step {step.name} was claimed without a completion token (the "
                           "worker did not know its task completes externally)")
    return step.completion_token


def _finish(step: ClaimedStep, result: Any) -> Outcome:
    try:
        output = codec.dumps(result, codec.MAX_DEPTH)
    except TypeError as exc:
        # The same body would return the same value again: retrying cannot help.
        return Outcome(step.id, step.run_id, step.lease_token, error=error_of(exc), fatal=True)
    return Outcome(step.id, step.run_id, step.lease_token, output=output)


def _failed(step: ClaimedStep, exc: BaseException) -> Outcome:
    kind = "timeout" if isinstance(exc, TimeoutError) else "failed"
    return Outcome(step.id, step.run_id, step.lease_token, error=error_of(exc),
                   fatal=isinstance(exc, Fatal), kind=kind)


def _with_emits(outcome: Outcome, box: list[Emitted]) -> Outcome:
    """A succeeded attempt's outcome carries what it emitted; a failed one drops it."""
    if not box or not outcome.ok:
        return outcome
    return dataclasses.replace(outcome, emits=tuple(box))


def run_sync(task: Task[Any, Any], step: ClaimedStep, heart: Heart) -> Outcome:
    try:
        with outbox() as box:
            args, kwargs = _call_args(task, step, heart)
            result = task.fn(*args, **kwargs)
        if task.completes_externally:
            return _with_emits(Outcome(step.id, step.run_id, step.lease_token, output="null",
                                       handoff=completion_token(step)), box)
        return _with_emits(_finish(step, result), box)
    except BaseException as exc:
        # `sys.exit()`, a KeyboardInterrupt raised by hand, ...: the attempt's failure,
        # never the worker's end. A cancelled attempt (`wp.Cancelled`) has its end
        # recorded already; this report will be refused.
        return _failed(step, exc)


async def run_async(task: Task[Any, Any], step: ClaimedStep, heart: Heart) -> Outcome:
    try:
        with outbox() as box:
            args, kwargs = _call_args(task, step, heart)
            coro = task.fn(*args, **kwargs)
            if step.timeout:
                result = await asyncio.wait_for(coro, step.timeout)
            else:
                result = await coro
        if task.completes_externally:
            return _with_emits(Outcome(step.id, step.run_id, step.lease_token, output="null",
                                       handoff=completion_token(step)), box)
        return _with_emits(_finish(step, result), box)
    except TimeoutError:
        exc = TimeoutError(f"task exceeded its {step.timeout:g}s timeout")
        return _failed(step, exc)
    except asyncio.CancelledError as exc:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the worker cancelled it (lease lost, shutdown): nothing to report
        # The body raised it itself (or a library did): an ordinary failed attempt, or
        # the step would stay running with nobody working on it.
        return _failed(step, exc)
    except BaseException as exc:  # SystemExit would otherwise stop the event loop
        return _failed(step, exc)


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
        from .isolation import ChildAttempt  # imports this module

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
