"""Every error waypost raises on purpose.

```
WaypostError                 code  exit
├── DefinitionError           definition   2   a flow or task is declared wrongly
├── InputError                input        2   a run's input does not fit its flow
├── UnknownTargetError        unknown      2   a module, flow or run that does not exist
├── IdempotencyConflict       conflict     3   a key reused with a different input
├── StoreError                store        4   the database cannot be reached or is unusable
│   ├── SchemaVersionError    schema       4   the database's schema is newer than this code
│   └── DatabaseRefused       refused      4   a permanent database error: never retried
├── RunFailed                 run_failed   5   result() of a run that ended failed
└── ResultTimeout             timeout      6   result() waited longer than asked
```

`Fatal` is not a `WaypostError`: it is raised by user code to say "do not retry me".
`Cancelled` is a `BaseException`, so a task's `except Exception` cannot swallow it.
"""

from __future__ import annotations

from typing import Any


class WaypostError(Exception):
    code = "error"
    exit_code = 1


class DefinitionError(WaypostError):
    code = "definition"
    exit_code = 2


class InputError(WaypostError):
    code = "input"
    exit_code = 2


class UnknownTargetError(WaypostError):
    code = "unknown"
    exit_code = 2


class IdempotencyConflict(WaypostError):
    code = "conflict"
    exit_code = 3

    def __init__(self, key: str, existing_run: str) -> None:
        super().__init__(
            f"idempotency key {key!r} is already used by run {existing_run} with a different "
            "flow or input; no run was created"
        )
        self.key = key
        self.existing_run = existing_run


class StoreError(WaypostError):
    code = "store"
    exit_code = 4


class DatabaseRefused(StoreError):
    """The database refused a transaction for a reason trying again cannot change (a
    value it cannot store, a size limit, a constraint): raised at once, never retried."""

    code = "refused"


class SchemaVersionError(StoreError):
    code = "schema"


class RunFailed(WaypostError):
    code = "run_failed"
    exit_code = 5

    def __init__(self, run_id: str, error: Any) -> None:
        detail = error.get("message", "") if isinstance(error, dict) else str(error)
        step = error.get("step") if isinstance(error, dict) else None
        where = f" at step {step}" if step else ""
        super().__init__(f"run {run_id} failed{where}: {detail}")
        self.run_id = run_id
        self.error = error


class ResultTimeout(WaypostError):
    code = "timeout"
    exit_code = 6


class Fatal(Exception):
    """Raise inside a task to fail its step at once, without retries."""


class Cancelled(BaseException):
    """Raised by `ctx.heartbeat()` once the attempt was cancelled (missed heartbeats, lost
    lease): stop work and let it propagate."""
