"""What a worker (or the sweeper) reports about one attempt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...vocabulary.topics import Emitted


@dataclass(frozen=True)
class Outcome:
    step_id: int
    run_id: str
    token: str
    output: str | None = None  # JSON text when the attempt succeeded
    error: dict[str, Any] | None = None
    fatal: bool = False
    kind: str = "failed"  # failed | timeout | lost (how a failure happened)
    expired: bool = False  # reported by the sweeper about an expired lease
    handoff: str | None = None  # a completion token: the step now waits for another system
    #: Events the attempt emitted (`wp.emit`): stored only if its success is recorded.
    emits: tuple[Emitted, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None
