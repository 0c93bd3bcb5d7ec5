"""Sagas: the compensation chain of a failed run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import (
    SqlCore,
    marks,
)


class CompensationVerbs(SqlCore):
    # -- compensation ----------------------------------------------------------------------
    def compensable(self, run_id: str, nodes: Sequence[str]) -> list[dict[str, Any]]:
        """Succeeded steps that can be undone, most recently finished first."""
        rows = self.execute(
            f"SELECT name, node, input, output FROM steps WHERE run_id = ? AND "
            f"status = 'succeeded' AND kind IN ('task', 'item') AND "
            f"node IN ({marks(len(nodes))}) ORDER BY finished_at DESC, id DESC",
            (run_id, *nodes)).fetchall()
        cols = ("name", "node", "input", "output")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    def start_compensation(self, run_id: str, error: str, open_steps: int) -> None:
        self.execute("UPDATE runs SET status = 'compensating', error = ?, open_steps = ?, "
                     "finished_at = NULL WHERE id = ?", (error, open_steps, run_id))

    def end_compensation(self, run_id: str, status: str = "compensated",
                         was: str = "compensating") -> None:
        """Compensation is over (all succeeded, or an operator gave up on it); the run
        keeps the error that started it."""
        self.execute("UPDATE steps SET status = 'cancelled', finished_at = {now} WHERE "
                     "run_id = ? AND kind = 'undo' AND status = 'pending'", (run_id,))
        self.execute("UPDATE runs SET status = ?, open_steps = 0, finished_at = {now} "
                     "WHERE id = ? AND status = ?", (status, run_id, was))

    def next_compensation(self, run_id: str, index: int) -> bool:
        cur = self.execute("UPDATE steps SET status = 'ready', waiting_on = 0, ready_at = {now} "
                     "WHERE run_id = ? AND kind = 'undo' AND map_index = ? AND "
                     "status = 'pending'", (run_id, index))
        return int(cur.rowcount) == 1

    def set_run_status(self, run_id: str, status: str, was: Sequence[str]) -> bool:
        cur = self.execute(f"UPDATE runs SET status = ? WHERE id = ? AND "
                           f"status IN ({marks(len(was))})", (status, run_id, *was))
        return int(cur.rowcount) == 1
