"""waypost: durable workflows for Python that survive kill -9, on SQLite or PostgreSQL."""

from __future__ import annotations

from .chains import Handler, emit, on
from .dag.flow import Flow, child, flow
from .dag.waits import after, gate, sleep, sleep_until, wait_for
from .errors import (
    Cancelled,
    DefinitionError,
    Fatal,
    IdempotencyConflict,
    InputError,
    ResultTimeout,
    RunFailed,
    StoreError,
    UnknownTargetError,
    WaypostError,
)
from .machine import Final, Machine, State, to
from .runtime.engine import Engine
from .runtime.process.worker import Worker
from .vocabulary.context import Context
from .vocabulary.limit import Limit, limit
from .vocabulary.retry import Backoff
from .vocabulary.task import Task, task

__version__ = "0.1.0"

__all__ = [
    "Backoff",
    "Cancelled",
    "Context",
    "DefinitionError",
    "Engine",
    "Fatal",
    "Final",
    "Flow",
    "Handler",
    "IdempotencyConflict",
    "InputError",
    "Limit",
    "Machine",
    "ResultTimeout",
    "RunFailed",
    "State",
    "StoreError",
    "Task",
    "UnknownTargetError",
    "WaypostError",
    "Worker",
    "__version__",
    "after",
    "child",
    "emit",
    "flow",
    "gate",
    "limit",
    "on",
    "sleep",
    "sleep_until",
    "task",
    "to",
    "wait_for",
]
