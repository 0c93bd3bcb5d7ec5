"""Waiting steps: gates, sleeps, escalations and operators' decisions."""

from __future__ import annotations

from typing import Any

from ..records import HeldStep
from .core import (
    _CLEAR_LEASE,
    _HELD,
    OPEN_RUN,
    SqlCore,
)


class WaitVerbs(SqlCore):
    # -- waiting: gates, sleeps, escalations ------------------------------------------------
    def make_waiting(self, run_id: str, name: str, due: float | None) -> int | None:
        row = self.execute("UPDATE steps SET status = 'waiting', ready_at = ?, "
                           "started_at = {now} WHERE run_id = ? AND name = ? AND "
                           "status = 'pending' RETURNING id", (due, run_id, name)).fetchone()
        return None if row is None else int(row[0])

    def due_waits(self, limit: int) -> list[tuple[int, str, str, str, str]]:
        """(id, run, name, kind, status) of waiting steps whose time has come."""
        rows = self.execute(
            "SELECT id, run_id, name, kind, status FROM steps WHERE status IN "
            "('waiting', 'needs_attention') AND ready_at <= {now} ORDER BY ready_at, id "
            "LIMIT ? {skip_locked}", (limit,)).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows]

    def end_wait(self, step_id: int, was: str, status: str, output: str | None,
                 error: str | None) -> HeldStep | None:
        """End a step that was waiting (`was`); the status in the condition makes a timer,
        an approval and an operator's answer each take effect at most once."""
        row = self.execute(
            f"UPDATE steps SET status = ?, output = ?, error = ?, ready_at = NULL, "
            f"finished_at = {{now}}, started_at = COALESCE(started_at, {{now}}) "
            f"WHERE id = ? AND status = ? RETURNING {_HELD}",
            (status, output, error, step_id, was)).fetchone()
        return None if row is None else HeldStep(*row)

    def step_named(self, run_id: str, name: str) -> dict[str, Any] | None:
        row = self.execute("SELECT id, kind, status, task, attempts, max_attempts, map_index, "
                           "node, name, waiting_on FROM steps WHERE run_id = ? AND name = ? "
                           "{lock}", (run_id, name)).fetchone()
        cols = ("id", "kind", "status", "task", "attempts", "max_attempts", "map_index",
                "node", "name", "waiting_on")
        return None if row is None else dict(zip(cols, row, strict=True))

    def escalate(self, step_id: int, error: str, timeout: float | None) -> None:
        self.execute(f"UPDATE steps SET status = 'needs_attention', error = ?, "
                     f"ready_at = {{now}} + ?, {_CLEAR_LEASE} WHERE id = ? AND status = 'running'",
                     (error, timeout, step_id))

    def attention(self, run_id: str) -> None:
        """A run waits for an operator while any of its steps does."""
        self.execute("UPDATE runs SET status = CASE WHEN EXISTS (SELECT 1 FROM steps WHERE "
                     "steps.run_id = runs.id AND steps.status = 'needs_attention') THEN "
                     "'needs_attention' WHEN status = 'needs_attention' THEN 'running' "
                     f"ELSE status END WHERE id = ? AND status IN {OPEN_RUN}", (run_id,))

    def retry_now(self, step_id: int, was: str, max_attempts: int) -> bool:
        cur = self.execute("UPDATE steps SET status = 'ready', ready_at = {now}, error = NULL, "
                           "finished_at = NULL, max_attempts = ? WHERE id = ? AND status = ?",
                           (max_attempts, step_id, was))
        return int(cur.rowcount) == 1

    def escalate_wait(self, step_id: int) -> bool:
        cur = self.execute("UPDATE steps SET status = 'needs_attention', ready_at = NULL "
                           "WHERE id = ? AND status = 'waiting'", (step_id,))
        return int(cur.rowcount) == 1

    def failed_attempts(self, step_id: int) -> int:
        row = self.execute("SELECT COUNT(*) FROM attempts WHERE step_id = ? AND outcome IN "
                           "('failed', 'timeout', 'heartbeat')", (step_id,)).fetchone()
        return int(row[0])

    def record_decision(self, step_id: int, outcome: str, by: str | None,
                        detail: str | None) -> None:
        """A person's answer (or a timer's) joins the step's history. It is numbered
        -1, -2, ... so it never takes the number of a real attempt."""
        self.execute("INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                     "started_at, finished_at) SELECT ?, m.lowest - 1, ?, ?, ?, {now}, {now} "
                     "FROM (SELECT COALESCE(MIN(attempt), 0) AS lowest FROM attempts "
                     "WHERE step_id = ? AND attempt < 0) m",
                     (step_id, by, outcome, detail, step_id))
