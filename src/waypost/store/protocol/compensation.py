"""Sagas: the undo chain of a failed run, one undo step at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class CompensationVerbs(Protocol):
    def compensable(self, run_id: str, nodes: Sequence[str]) -> list[dict[str, Any]]:
        """Succeeded task and item steps of `nodes`, most recently finished first. One
        statement, a read."""

    def start_compensation(self, run_id: str, error: str, open_steps: int) -> None:
        """The run is compensating after `error`. One statement; unfenced: the caller
        decided it while ending the run in this transaction."""

    def end_compensation(self, run_id: str, status: str = "compensated",
                         was: str = "compensating") -> None:
        """Compensation is over: pending undo steps cancelled, the run `status` if it was
        `was`. Two statements: needs the caller's transaction; the run fenced by `was`."""

    def next_compensation(self, run_id: str, index: int) -> bool:
        """Make the undo step number `index` ready; False if it is not pending. One
        statement, fenced by `pending`."""

    def set_run_status(self, run_id: str, status: str, was: Sequence[str]) -> bool:
        """Change a run's status if it is one of `was`. One statement, fenced by `was`."""
