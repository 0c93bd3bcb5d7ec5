"""Schedules: flows started at due times, each due time at most once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..records import ScheduleRow


class ScheduleVerbs(Protocol):
    def put_schedule(self, name: str, fingerprint: str, spec: str, next_at: float) -> bool:
        """Add a schedule, or change one whose definition or spec changed (its next fire
        then `next_at`); returns whether anything changed. One statement."""

    def drop_schedules(self, names: Sequence[str]) -> list[str]:
        """Remove these schedules, returning the names that were there. One statement."""

    def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        """Unpaused schedules due at `now`, soonest first (PostgreSQL: locked, skipping
        those locked by another worker). One statement."""

    def advance_schedule(self, name: str, was: float, next_at: float | None,
                         fired_at: float | None, run_id: str | None) -> bool:
        """Move a schedule's next fire from `was` to `next_at`, recording a fire's due time
        and run; fenced by `was`, so one due time moves once. One statement."""

    def schedules(self) -> list[ScheduleRow]:
        """Every schedule, by name. One statement, a read."""

    def pause_schedule(self, name: str, paused: bool, next_at: float | None) -> bool:
        """Pause a schedule, or resume it with its next fire at `next_at`; whether it
        exists. One statement."""
