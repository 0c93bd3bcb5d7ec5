"""`@wp.task`: a unit of work with a retry policy.

Called inside a `@wp.flow` body a task does not run: it adds a node to the graph being
built and returns a placeholder for its output. Called anywhere else it is the plain
function, so tasks stay easy to unit-test.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from ..errors import DefinitionError
from ..masking import declare
from ..registry import registry
from .context import Context
from .limit import Limit, resolve_uses
from .rates import parse_rate, seconds
from .recording import current_recorder
from .retry import Backoff

P = ParamSpec("P")
R = TypeVar("R")

ISOLATIONS = ("thread", "process")


def registered_tasks() -> dict[str, Task[Any, Any]]:
    """Every task defined in this process, by its stored name: the registry's, typed."""
    return {name: t for name, t in registry.tasks().items() if isinstance(t, Task)}


def _context_param(fn: Callable[..., Any]) -> str | None:
    for p in inspect.signature(fn).parameters.values():
        ann = p.annotation
        if ann is Context or (isinstance(ann, str) and ann.split(".")[-1] == "Context"):
            return p.name
    return None


def _check_importable(fn: Callable[..., Any]) -> None:
    """A process-isolated body is found again in its child process by module and name, so
    it must be reachable from there."""
    if "<locals>" in fn.__qualname__:
        raise DefinitionError(f"task {fn.__qualname__}: a task with isolation='process' must "
                              "be defined at module level, where its process can import it")
    if fn.__module__ == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        if getattr(main, "__file__", None) is None and getattr(spec, "name", None) is None:
            raise DefinitionError(f"task {fn.__qualname__}: a task with isolation='process' "
                                  "cannot be defined interactively; put it in a file")


class Task(Generic[P, R]):
    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        retries: int = 0,
        backoff: Backoff | None = None,
        timeout: float | None = None,
        heartbeat: float | None = None,
        completes_externally: bool = False,
        queue_timeout: float | None = None,
        retry_budget: str | None = None,
        compensate: Task[..., Any] | None = None,
        escalate_after: int | None = None,
        escalation_timeout: timedelta | float | None = None,
        on_escalation_timeout: str = "fail",
        destructive: bool = False,
        isolation: str = "thread",
        uses: Iterable[str | Limit] | str | Limit | None = None,
        secret: Iterable[str] | str | None = None,
    ) -> None:
        # Checked first: a refused task must not be registered.
        limits = resolve_uses(name or fn.__qualname__, uses)
        #: Parameters (or fields of its input) never shown (masking.py).
        self.secret = declare(secret, f"task {fn.__qualname__}")
        if retries < 0:
            raise DefinitionError(f"task {fn.__qualname__}: retries must be >= 0")
        if timeout is not None and timeout <= 0:
            raise DefinitionError(f"task {fn.__qualname__}: timeout must be > 0 seconds")
        if queue_timeout is not None and queue_timeout <= 0:
            raise DefinitionError(f"task {fn.__qualname__}: queue_timeout must be > 0 seconds")
        if heartbeat is not None and heartbeat <= 0:
            raise DefinitionError(f"task {fn.__qualname__}: heartbeat must be > 0 seconds")
        if compensate is not None and not isinstance(compensate, Task):
            raise DefinitionError(f"task {fn.__qualname__}: compensate= takes a @wp.task "
                                  "(compensations are durable steps with their own retries)")
        if escalate_after is not None and escalate_after < 1:
            raise DefinitionError(f"task {fn.__qualname__}: escalate_after must be >= 1")
        if escalation_timeout is not None and escalate_after is None:
            raise DefinitionError(f"task {fn.__qualname__}: escalation_timeout needs "
                                  "escalate_after")
        if on_escalation_timeout not in ("fail", "retry", "skip"):
            raise DefinitionError(f"task {fn.__qualname__}: on_escalation_timeout is fail, "
                                  f"retry or skip, not {on_escalation_timeout!r}")
        self.retry_budget = (None if retry_budget is None else
                             parse_rate(retry_budget, f"task {fn.__qualname__}: retry_budget"))
        self.escalation_timeout = seconds(escalation_timeout,
                                          f"task {fn.__qualname__}: escalation_timeout")
        self.compensate = compensate
        self.escalate_after = escalate_after
        self.on_escalation_timeout = on_escalation_timeout
        self.destructive = destructive
        if isolation not in ISOLATIONS:
            raise DefinitionError(f"task {fn.__qualname__}: isolation must be 'thread' or "
                                  f"'process', not {isolation!r}")
        if isolation == "process":
            _check_importable(fn)
        self.fn = fn
        self.name = name or f"{fn.__module__}:{fn.__qualname__}"
        self.short_name = fn.__name__
        self.retries = retries
        self.backoff = backoff or Backoff()
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.completes_externally = completes_externally
        self.queue_timeout = queue_timeout
        self.isolation = isolation
        self.limits = limits
        self.uses = [lim.name for lim in limits]
        self.context_param = _context_param(fn)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        registry.declare_task(self)

    def options(self) -> dict[str, Any]:
        options = {"max_attempts": self.retries + 1, "backoff": self.backoff.to_json(),
                   "timeout": self.timeout}
        # Absent unless set, so the graphs (and fingerprints) of older flows do not change.
        if self.heartbeat is not None:
            options["heartbeat"] = self.heartbeat
        if self.completes_externally:
            options["completes_externally"] = True
        if self.queue_timeout is not None:
            options["queue_timeout"] = self.queue_timeout
        if self.retry_budget is not None:
            options["retry_budget"] = list(self.retry_budget)
        if self.compensate is not None:
            options["compensate"] = self.compensate.name
            options["compensate_options"] = self.compensate.options()
        if self.escalate_after is not None:
            # An operator is asked after N failures, so the task gets at least N attempts.
            options["max_attempts"] = max(self.retries + 1, self.escalate_after)
            options["escalate_after"] = self.escalate_after
            options["escalation_timeout"] = self.escalation_timeout
            if self.on_escalation_timeout != "fail":
                options["on_escalation_timeout"] = self.on_escalation_timeout
        if self.destructive:
            options["destructive"] = True
        if self.isolation != "thread":
            options["isolation"] = self.isolation
        if self.uses:
            options["uses"] = list(self.uses)
        return options

    @property
    def params(self) -> list[str]:
        """Its parameters in order, as a step's input gives them (the context aside)."""
        return [p for p in self.signature.parameters if p != self.context_param]

    def _check_call(self, args: tuple[Any, ...], kwargs: dict[str, Any], extra: int = 0) -> None:
        params = [p for p in self.signature.parameters.values() if p.name != self.context_param]
        sig = self.signature.replace(parameters=params)
        try:
            sig.bind(*([None] * extra), *args, **kwargs)
        except TypeError as exc:
            raise DefinitionError(f"task {self.short_name}: {exc}") from None

    # Loosely typed on purpose: inside a flow the `ctx` parameter is supplied by the runtime.
    def __call__(self, *args: Any, **kwargs: Any) -> R:
        builder = current_recorder()
        if builder is None:
            return self.fn(*args, **kwargs)
        self._check_call(args, kwargs)
        if self.compensate is not None:  # it is called as undo(output, *args, **kwargs)
            self.compensate._check_call(args, kwargs, extra=1)
        return cast(R, builder.add(self, "task", list(args), dict(kwargs)))

    def map(self, items: Any, *args: Any, **kwargs: Any) -> list[R]:
        """One step per element of `items` (an upstream output or a flow parameter), each
        called as `task(element, *args, **kwargs)`; the result is the list of outputs."""
        builder = current_recorder()
        if builder is None:
            return [self.fn(item, *args, **kwargs) for item in items]
        self._check_call(args, kwargs, extra=1)
        if self.compensate is not None:
            self.compensate._check_call(args, kwargs, extra=2)
        return cast(list[R], builder.add(self, "map", list(args), dict(kwargs), over=items))

    def __repr__(self) -> str:
        return f"<task {self.name}>"


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...
@overload
def task(
    *, name: str | None = None, retries: int = 0, backoff: Backoff | None = None,
    timeout: float | None = None, heartbeat: float | None = None,
    completes_externally: bool = False, queue_timeout: float | None = None,
    retry_budget: str | None = None, compensate: Task[..., Any] | None = None,
    escalate_after: int | None = None, escalation_timeout: timedelta | float | None = None,
    on_escalation_timeout: str = "fail", destructive: bool = False,
    isolation: str = "thread",
    uses: Iterable[str | Limit] | str | Limit | None = None,
    secret: Iterable[str] | str | None = None,
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None, /, *, name: str | None = None, retries: int = 0,
    backoff: Backoff | None = None, timeout: float | None = None,
    heartbeat: float | None = None, completes_externally: bool = False,
    queue_timeout: float | None = None, retry_budget: str | None = None,
    compensate: Task[..., Any] | None = None, escalate_after: int | None = None,
    escalation_timeout: timedelta | float | None = None, on_escalation_timeout: str = "fail",
    destructive: bool = False, isolation: str = "thread",
    uses: Iterable[str | Limit] | str | Limit | None = None,
    secret: Iterable[str] | str | None = None,
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Declare a task. `retries` extra attempts follow a failure, `backoff` apart;
    `timeout` (seconds) bounds one attempt from start to finish, `queue_timeout` how long
    a ready step may wait for a worker; with `heartbeat` (seconds)
    the task calls `ctx.heartbeat()` at least that often: 2 missed intervals make the step
    suspicious, 3 cancel the attempt and retry it. With `completes_externally` the task
    hands `ctx.completion_token` to another system and returns; the step stays running
    until `engine.complete(token, output)` or `engine.fail(token, error)`. `uses` names
    the limits (`wp.limit`) every attempt is claimed through, retries included.

    Failure paths: `retry_budget="10/minute"` caps this task's retries across all runs, so a
    failing dependency is not hammered (a refused retry makes the step dead); `compensate`
    names the task that undoes this one if the run later fails, called as
    `undo(output, *args, **kwargs)`; `escalate_after=N` asks an operator after every N
    failed attempts (the run waits as `needs_attention`; if nobody answers within
    `escalation_timeout`, `on_escalation_timeout` answers: fail, retry or skip);
    `destructive` marks a step that cannot be undone.
    With `isolation="process"` each attempt runs in a child process the worker can kill.
    `secret` names parameters (or fields of them) shown as "***" in the API, the
    dashboard and the logs."""

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(f, name=name, retries=retries, backoff=backoff, timeout=timeout,
                    heartbeat=heartbeat, completes_externally=completes_externally,
                    queue_timeout=queue_timeout, retry_budget=retry_budget,
                    compensate=compensate, escalate_after=escalate_after,
                    escalation_timeout=escalation_timeout,
                    on_escalation_timeout=on_escalation_timeout, destructive=destructive,
                    isolation=isolation, uses=uses, secret=secret)

    return wrap(fn) if fn is not None else wrap
