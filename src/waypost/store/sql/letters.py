"""Dead letters and retry budgets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import (
    SqlCore,
    marks,
)

_LETTER = ("id", "run_id", "step_id", "step", "task", "input", "error", "attempts", "status",
           "created_at", "replayed_at", "replay_input")
# A dead letter that can never be replayed is `closed`, computed rather than stored, so
# nothing has to remember to close it: its run's work was undone (compensation), or its
# step no longer failed (an operator skipped it, a resume or retry took it up again).
_STATUS = ("CASE WHEN status = 'dead' AND (EXISTS (SELECT 1 FROM runs r WHERE "
           "r.id = dead_letters.run_id AND r.status IN ('compensating', 'compensated', "
           "'compensation_failed')) OR EXISTS (SELECT 1 FROM steps s WHERE "
           "s.id = dead_letters.step_id AND s.status <> 'failed')) THEN 'closed' "
           "ELSE status END")
_SELECT = ", ".join(_STATUS if c == "status" else c for c in _LETTER)


class LetterVerbs(SqlCore):
    # -- dead letters and retry budgets ---------------------------------------------------
    def add_dead_letter(self, step_id: int, error: str) -> None:
        self.execute("INSERT INTO dead_letters (run_id, step_id, step, task, input, error, "
                     "attempts, status, created_at) SELECT run_id, id, name, task, input, ?, "
                     "attempts, 'dead', {now} FROM steps WHERE id = ?", (error, step_id))

    def dead_letters(self, status: str | None, run_id: str | None,
                     limit: int) -> list[dict[str, Any]]:
        """Newest first; `status` is `dead` (replayable), `replayed`, `closed` or None."""
        where, params = [], []
        if status:  # the stored status first, which the index has; closed letters are dead
            where.append(f"status = ? AND {_STATUS} = ?")
            params += ["dead" if status == "closed" else status, status]
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.execute(f"SELECT {_SELECT} FROM dead_letters {clause} "
                            f"ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [dict(zip(_LETTER, r, strict=True)) for r in rows]

    def dead_letter(self, letter_id: int) -> dict[str, Any] | None:
        """One letter (a replay reads it again once it holds its run's lock: no row lock
        here, so `dlq show` can read it in a read-only transaction)."""
        row = self.execute(f"SELECT {_SELECT} FROM dead_letters WHERE id = ?",
                           (letter_id,)).fetchone()
        return None if row is None else dict(zip(_LETTER, row, strict=True))

    def letters_replayed(self, step_ids: Sequence[int], patched: str | None) -> None:
        """The dead letters of these steps are being retried (by a replay or a resume)."""
        if step_ids:
            self.execute(f"UPDATE dead_letters SET status = 'replayed', replayed_at = {{now}}, "
                         f"replay_input = ? WHERE status = 'dead' AND "
                         f"step_id IN ({marks(len(step_ids))})", (patched, *step_ids))

    def patch_input(self, step_id: int, input: str, checksum: str) -> None:
        self.execute("UPDATE steps SET input = ?, input_checksum = ? WHERE id = ?",
                     (input, checksum, step_id))

    def spend_retry(self, task: str, budget: int, period: float) -> bool:
        """Take one retry from a task's budget for the current window (windows are fixed,
        `period` long); False, and the refusal counted, when it is spent."""
        row = self.execute(
            "INSERT INTO retry_budgets (task, window_start, used, refused, refused_total) "
            "VALUES (?, {now}, 0, 0, 0) ON CONFLICT (task) DO UPDATE SET "
            "window_start = CASE WHEN retry_budgets.window_start + ? <= {now} THEN {now} "
            "ELSE retry_budgets.window_start END, "
            "used = CASE WHEN retry_budgets.window_start + ? <= {now} THEN 0 "
            "ELSE retry_budgets.used END, "
            "refused = CASE WHEN retry_budgets.window_start + ? <= {now} THEN 0 "
            "ELSE retry_budgets.refused END RETURNING used",
            (task, period, period, period)).fetchone()
        ok = int(row[0]) < budget
        column = "used = used + 1" if ok else "refused = refused + 1, " \
            "refused_total = refused_total + 1"
        self.execute(f"UPDATE retry_budgets SET {column} WHERE task = ?", (task,))
        return ok

    def retry_budgets(self, tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not tasks:
            return {}
        rows = self.execute(f"SELECT task, window_start, used, refused, refused_total "
                            f"FROM retry_budgets WHERE task IN ({marks(len(tasks))})",
                            tasks).fetchall()
        return {str(r[0]): {"window_start": r[1], "used": r[2], "refused": r[3],
                            "refused_total": r[4]} for r in rows}
