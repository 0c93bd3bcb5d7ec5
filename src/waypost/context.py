"""What a running task may know about itself."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """Handed to a task that declares a `ctx: wp.Context` parameter.

    `idempotency_key` is derived from the run and the step name, so it is the same on every
    retry of this step in this run and different for every other step and run: send it to
    external APIs so that a retried call is deduplicated on their side.
    """

    run_id: str
    step: str
    attempt: int
    idempotency_key: str
