"""One attempt of a task body, on a thread or an event loop, and whatever happens turned
into an `Outcome`: a value that is not JSON, an exception (`SystemExit` included), a
timeout, a hand-off to another system. A body in a child process (isolation.py) reports
the same way, through `error_of` and `completion_token`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import traceback
from typing import Any

from ... import codec
from ...errors import Fatal
from ...store.records import ClaimedStep
from ...vocabulary.context import Context, Heart
from ...vocabulary.outbox import outbox
from ...vocabulary.task import Task
from ...vocabulary.topics import Emitted
from ..core.outcome import Outcome


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
