"""Steps: creation and the DAG's bookkeeping (dependencies, outputs, maps, blocking)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records import NewStep, StepRow
from .core import (
    _MISSED_2,
    STEP_COLUMNS,
    SqlCore,
    marks,
)


class StepVerbs(SqlCore):
    # -- steps: creation and the DAG's bookkeeping -----------------------------------------
    def insert_steps(self, run_id: str, steps: Sequence[NewStep], keys: Sequence[str]) -> None:
        self.executemany(
            "INSERT INTO steps (run_id, name, node, kind, task, map_index, status, waiting_on, "
            "max_attempts, timeout, heartbeat, queue_timeout, ready_at, input, input_checksum, "
            "idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {now}, ?, ?, ?)",
            [(run_id, s.name, s.node, s.kind, s.task, s.map_index, s.status, s.waiting_on,
              s.max_attempts, s.timeout, s.heartbeat, s.queue_timeout, s.input,
              s.input_checksum, k)
             for s, k in zip(steps, keys, strict=True)])

    def release(self, run_id: str, names: Sequence[str]) -> list[str]:
        """One dependency of each named step succeeded; returns those now free to start."""
        rows = self.execute(
            f"UPDATE steps SET waiting_on = waiting_on - 1 WHERE run_id = ? AND "
            f"name IN ({marks(len(names))}) AND status = 'pending' RETURNING name, waiting_on",
            (run_id, *names)).fetchall()
        return sorted((str(r[0]) for r in rows if r[1] == 0), key=list(names).index)

    def outputs(self, run_id: str, names: Sequence[str]) -> dict[str, str]:
        if not names:
            return {}
        rows = self.execute(f"SELECT name, output FROM steps WHERE run_id = ? AND "
                            f"name IN ({marks(len(names))})", (run_id, *names)).fetchall()
        return {str(r[0]): r[1] for r in rows}

    def make_ready(self, run_id: str, name: str, input: str, checksum: str) -> None:
        self.execute("UPDATE steps SET status = 'ready', ready_at = {now}, input = ?, "
                     "input_checksum = ? WHERE run_id = ? AND name = ? AND status = 'pending'",
                     (input, checksum, run_id, name))

    def start_map(self, run_id: str, name: str, children: int) -> None:
        self.execute("UPDATE steps SET status = 'running', waiting_on = ?, started_at = {now}, "
                     "attempts = 1 WHERE run_id = ? AND name = ? AND status = 'pending'",
                     (children, run_id, name))

    def item_done(self, run_id: str, node: str, count: int = 1) -> int | None:
        """`count` items of a map ended; returns how many are still open (None: the map is
        not running, and nothing changed)."""
        row = self.execute("UPDATE steps SET waiting_on = waiting_on - ? WHERE run_id = ? AND "
                           "name = ? AND status = 'running' RETURNING waiting_on",
                           (count, run_id, node)).fetchone()
        return None if row is None else int(row[0])

    def map_items(self, run_id: str, node: str) -> list[tuple[str, str | None, str | None]]:
        rows = self.execute("SELECT status, output, error FROM steps WHERE run_id = ? AND "
                            "node = ? AND kind = 'item' ORDER BY map_index",
                            (run_id, node)).fetchall()
        return [(str(r[0]), r[1], r[2]) for r in rows]

    def end_node(self, run_id: str, name: str, status: str, output: str | None,
                 error: str | None) -> None:
        """End a step that runs no task: a gathered fan-out (`running`), a step whose
        input cannot be built (`pending`), a machine's waiting visit left by an event
        (`waiting`). A step that ended already is left alone."""
        self.execute("UPDATE steps SET status = ?, output = ?, error = ?, finished_at = {now}, "
                     "started_at = COALESCE(started_at, {now}), ready_at = NULL "
                     "WHERE run_id = ? AND name = ? AND status IN ('pending', 'running', "
                     "'waiting')",
                     (status, output, error, run_id, name))

    def block(self, run_id: str, names: Sequence[str]) -> int:
        """Steps that can never start because something they need failed."""
        if not names:
            return 0
        cur = self.execute(f"UPDATE steps SET status = 'upstream_failed', finished_at = {{now}} "
                           f"WHERE run_id = ? AND name IN ({marks(len(names))}) "
                           f"AND status = 'pending'", (run_id, *names))
        return int(cur.rowcount)

    def first_failure(self, run_id: str) -> tuple[str, str | None] | None:
        row = self.execute("SELECT name, error FROM steps WHERE run_id = ? AND status = 'failed' "
                           "AND kind != 'undo' ORDER BY finished_at, id LIMIT 1",
                           (run_id,)).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def steps_of(self, run_id: str) -> list[StepRow]:
        """Every step of a run, with `suspicious` judged here by the database's clock."""
        rows = self.execute(
            f"SELECT {', '.join(STEP_COLUMNS)}, CASE WHEN status = 'running' AND {_MISSED_2} "
            f"THEN 1 ELSE 0 END FROM steps WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        steps = [{**dict(zip(STEP_COLUMNS, r[:-1], strict=True)), "suspicious": bool(r[-1])}
                 for r in rows]
        for step in steps:  # an interval taken by default is stored negated (see _MISSED_2)
            if step["heartbeat"] is not None:
                step["heartbeat"] = abs(step["heartbeat"])
        return steps

    def attempts_of(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT a.step_id, a.attempt, a.worker, a.outcome, a.error, a.started_at, "
            "a.finished_at FROM attempts a JOIN steps s ON s.id = a.step_id "
            "WHERE s.run_id = ? ORDER BY a.step_id, a.finished_at, a.attempt",
            (run_id,)).fetchall()
        cols = ("step_id", "attempt", "worker", "outcome", "error", "started_at", "finished_at")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def attempts_of_step(self, step_id: int) -> list[dict[str, Any]]:
        rows = self.execute("SELECT attempt, worker, outcome, error, started_at, finished_at "
                            "FROM attempts WHERE step_id = ? ORDER BY attempt",
                            (step_id,)).fetchall()
        cols = ("attempt", "worker", "outcome", "error", "started_at", "finished_at")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def reset_step(self, step_id: int, was: str, status: str, waiting_on: int,
                   max_attempts: int) -> bool:
        """Reopen a step that is still `was` (fenced: a step that moved on since it was read
        is left alone); False if it was not."""
        cur = self.execute("UPDATE steps SET status = ?, waiting_on = ?, max_attempts = ?, "
                           "error = NULL, output = NULL, finished_at = NULL, ready_at = {now} "
                           "WHERE id = ? AND status = ?",
                           (status, waiting_on, max_attempts, step_id, was))
        return int(cur.rowcount) == 1
