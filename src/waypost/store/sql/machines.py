"""State machines: a machine run's current state and data, and its transitions."""

from __future__ import annotations

from typing import Any

from .core import SqlCore

_TRANSITION = ("seq", "from_state", "to_state", "trigger", "event_id", "data_before",
               "data_after", "at")


class MachineVerbs(SqlCore):
    def machine(self, run_id: str) -> tuple[str | None, str | None, int]:
        """Read under the run's row lock: whoever reads a machine's state next waits for
        this transaction, so a transition is always decided from the latest one."""
        row = self.execute("SELECT state, data, transitions FROM runs WHERE id = ? {lock}",
                           (run_id,)).fetchone()
        return (None, None, 0) if row is None else (row[0], row[1], int(row[2]))

    def set_machine(self, run_id: str, state: str, data: str, seq: int) -> None:
        """Fenced by the transition count: two writers that both read transition `seq - 1`
        cannot both move the machine on."""
        cur = self.execute("UPDATE runs SET state = ?, data = ?, transitions = ? "
                           "WHERE id = ? AND transitions = ?", (state, data, seq, run_id, seq - 1))
        if cur.rowcount != 1:
            raise RuntimeError(f"run {run_id}: the machine moved on under this transaction "
                               f"(expected transition {seq - 1})")

    def add_transition(self, run_id: str, seq: int, from_state: str | None, to_state: str,
                       trigger: str, event_id: str | None, data_before: str | None,
                       data_after: str) -> None:
        self.execute("INSERT INTO transitions (run_id, seq, from_state, to_state, trigger, "
                     "event_id, data_before, data_after, at) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now})",
                     (run_id, seq, from_state, to_state, trigger, event_id, data_before,
                      data_after))

    def transitions(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """The first `limit` transitions of a run, oldest first."""
        rows = self.execute(f"SELECT {', '.join(_TRANSITION)} FROM transitions WHERE run_id = ? "
                            f"ORDER BY seq LIMIT ?", (run_id, limit)).fetchall()
        return [dict(zip(_TRANSITION, r, strict=True)) for r in rows]
