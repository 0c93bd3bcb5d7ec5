"""The hook a flow body's calls are recorded through.

A task called inside a flow body does not run: it becomes a node of the flow's graph. The
task cannot know the DAG front-end (the front-ends sit above the tasks they share), so the
front-end that runs a body installs a recorder here for the body's duration, and a task
asks for it when called. No recorder: the call is a plain function call.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Recorder(Protocol):
    def add(self, task: Any, kind: str, args: list[Any], kwargs: dict[str, Any],
            over: Any = None) -> Any:
        """A node for `task` (a `Task`: this hook sits below it) called with `args` and
        `kwargs` (`kind` task, or map `over` items); returns what stands for its output in
        the body."""
        ...


_recorder: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar(
    "waypost_recorder", default=None)


def current_recorder() -> Recorder | None:
    return _recorder.get()


@contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    token = _recorder.set(recorder)
    try:
        yield
    finally:
        _recorder.reset(token)
