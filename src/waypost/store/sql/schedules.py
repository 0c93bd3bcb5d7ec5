"""Schedules: flows started at due times, each due time at most once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records import ScheduleRow
from .core import SqlCore, marks

_SCHEDULE = "name, fingerprint, spec, next_at, last_at, last_run, paused"


def _schedule(row: Sequence[Any]) -> ScheduleRow:
    return ScheduleRow(row[0], row[1], row[2], None if row[3] is None else float(row[3]),
                       None if row[4] is None else float(row[4]), row[5], bool(row[6]))


class ScheduleVerbs(SqlCore):
    def put_schedule(self, name: str, fingerprint: str, spec: str, next_at: float) -> bool:
        """Add a schedule, or change one whose definition or spec changed (its next fire
        becomes `next_at`); the same code starting again changes nothing. Returns whether
        anything changed."""
        row = self.execute("INSERT INTO schedules (name, fingerprint, spec, next_at, "
                           "created_at, updated_at) VALUES (?, ?, ?, ?, {now}, {now}) "
                           "ON CONFLICT (name) DO UPDATE SET fingerprint = "
                           "excluded.fingerprint, spec = excluded.spec, next_at = "
                           "excluded.next_at, updated_at = excluded.updated_at WHERE "
                           "schedules.fingerprint <> excluded.fingerprint OR "
                           "schedules.spec <> excluded.spec RETURNING name",
                           (name, fingerprint, spec, next_at)).fetchone()
        return row is not None

    def drop_schedules(self, names: Sequence[str]) -> list[str]:
        """Remove these schedules (their code has none any more); returns those removed."""
        if not names:
            return []
        rows = self.execute(f"DELETE FROM schedules WHERE name IN ({marks(len(names))}) "
                            f"RETURNING name", list(names)).fetchall()
        return sorted(str(r[0]) for r in rows)

    def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        """Schedules not paused whose next fire is at or before `now`, soonest first; on
        PostgreSQL locked, skipping those another worker is firing."""
        rows = self.execute(f"SELECT {_SCHEDULE} FROM schedules WHERE paused = 0 AND "
                            f"next_at <= ? ORDER BY next_at LIMIT ? {{skip_locked}}",
                            (now, limit)).fetchall()
        return [_schedule(r) for r in rows]

    def advance_schedule(self, name: str, was: float, next_at: float | None,
                         fired_at: float | None, run_id: str | None) -> bool:
        """Move a schedule's next fire on from `was` (fenced by it: of two workers firing
        one due time, one moves it); a fire records its due time and run."""
        cur = self.execute("UPDATE schedules SET next_at = ?, last_at = COALESCE(?, last_at), "
                           "last_run = COALESCE(?, last_run), updated_at = {now} WHERE "
                           "name = ? AND next_at = ?",
                           (next_at, fired_at, run_id, name, was))
        return int(cur.rowcount) == 1

    def schedules(self) -> list[ScheduleRow]:
        rows = self.execute(f"SELECT {_SCHEDULE} FROM schedules ORDER BY name").fetchall()
        return [_schedule(r) for r in rows]

    def pause_schedule(self, name: str, paused: bool, next_at: float | None) -> bool:
        """Pause a schedule, or resume it with its next fire at `next_at` (what fell due
        while it was paused is not fired). Returns whether the schedule exists."""
        cur = self.execute("UPDATE schedules SET paused = ?, next_at = COALESCE(?, next_at), "
                           "updated_at = {now} WHERE name = ?",
                           (1 if paused else 0, next_at, name))
        return int(cur.rowcount) == 1
