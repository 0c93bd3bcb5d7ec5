"""Rows the store hands back to the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClaimedStep:
    """A step a worker now holds: `lease_token` fences everything it later reports."""

    id: int
    run_id: str
    name: str
    node: str
    kind: str
    task: str
    input: str
    attempts: int
    idempotency_key: str
    lease_token: str
    timeout: float | None


@dataclass(frozen=True)
class HeldStep:
    """What the fence check of a finishing attempt returns."""

    id: int
    run_id: str
    name: str
    node: str
    kind: str
    map_index: int | None
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class Expired:
    step_id: int
    run_id: str
    lease_token: str
    owner: str | None
    reason: str  # lost | timeout


RunRow = dict[str, Any]
StepRow = dict[str, Any]
