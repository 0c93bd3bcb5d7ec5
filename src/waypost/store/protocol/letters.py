"""Dead letters and retry budgets: what failed for good, and how often a task may retry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class LetterVerbs(Protocol):
    def add_dead_letter(self, step_id: int, error: str) -> None:
        """A copy of the step (input, attempts) as it died joins the dead-letter queue. One
        statement; unfenced: the caller just failed the step."""

    def dead_letters(self, status: str | None, run_id: str | None,
                     limit: int) -> list[dict[str, Any]]:
        """Newest letters first, optionally of one status and one run. One statement."""

    def dead_letter(self, letter_id: int) -> dict[str, Any] | None:
        """One letter, its row locked to the end of the caller's transaction (PostgreSQL),
        so two replays of one letter are serial. One statement."""

    def letters_replayed(self, step_ids: Sequence[int], patched: str | None) -> None:
        """The dead letters of these steps are being retried (with `patched` input, if
        any). One statement, fenced by `dead`: a letter is replayed once."""

    def patch_input(self, step_id: int, input: str, checksum: str) -> None:
        """Replace a step's input (a replay with a patch). One statement; unfenced."""

    def spend_retry(self, task: str, budget: int, period: float) -> bool:
        """Take one retry from `task`'s budget of `budget` per fixed `period` window; False
        (the refusal counted) when spent. Two statements: needs the caller's transaction;
        the first (an upsert) locks the task's row, so concurrent spenders are serial."""

    def retry_budgets(self, tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The budget rows of `tasks` (absent: never spent). One statement, a read."""
