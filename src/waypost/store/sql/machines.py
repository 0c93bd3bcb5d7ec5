"""State machines: a machine run's current state and data, and its transitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .core import SqlCore, marks

_TRANSITION = ("seq", "from_state", "to_state", "trigger", "event_id", "data_before",
               "data_after", "at")
_SIGNAL = ("seq", "name", "event_id", "payload", "status", "state", "created_at", "handled_at")


_ADD_TRANSITION = ("INSERT INTO transitions (run_id, seq, from_state, to_state, trigger, "
                   "event_id, data_before, data_after, at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now})")


def _moved_on(run_id: str, seq: int) -> RuntimeError:
    return RuntimeError(f"run {run_id}: the machine moved on under this transaction "
                        f"(expected transition {seq - 1})")


class MachineVerbs(SqlCore):
    def machine(self, run_id: str) -> tuple[str | None, str | None, int]:
        """Read under the run's row lock: whoever reads a machine's state next waits for
        this transaction, so a transition is always decided from the latest one."""
        row = self.execute("SELECT state, data, transitions FROM runs WHERE id = ? {lock}",
                           (run_id,)).fetchone()
        return (None, None, 0) if row is None else (row[0], row[1], int(row[2]))

    def transition(self, run_id: str, seq: int, from_state: str | None, to_state: str,
                   trigger: str, event_id: str | None, data_before: str | None,
                   data_after: str) -> None:
        """Move the machine on as its transition number `seq`, and keep it in the history;
        fenced by the run being at transition `seq - 1`."""
        cur = self.execute("UPDATE runs SET state = ?, data = ?, transitions = ? "
                           "WHERE id = ? AND transitions = ?",
                           (to_state, data_after, seq, run_id, seq - 1))
        if cur.rowcount != 1:
            raise _moved_on(run_id, seq)
        self.execute(_ADD_TRANSITION, (run_id, seq, from_state, to_state, trigger, event_id,
                                       data_before, data_after))

    def transitions(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """The first `limit` transitions of a run, oldest first."""
        rows = self.execute(f"SELECT {', '.join(_TRANSITION)} FROM transitions WHERE run_id = ? "
                            f"ORDER BY seq LIMIT ?", (run_id, limit)).fetchall()
        return [dict(zip(_TRANSITION, r, strict=True)) for r in rows]

    # -- signals sent to machines ------------------------------------------------------------
    def add_signal(self, run_id: str, name: str, event_id: str | None,
                  payload: str) -> tuple[int, bool]:
        """Store a signal (pending); with an `event_id` the run already has, the stored
        one's seq and False: sending twice stores one signal."""
        row = self.execute("INSERT INTO signals (run_id, name, event_id, payload, status, "
                           "created_at) VALUES (?, ?, ?, ?, 'pending', {now}) "
                           "ON CONFLICT DO NOTHING RETURNING seq",
                           (run_id, name, event_id, payload)).fetchone()
        if row is not None:
            return int(row[0]), True
        row = self.execute("SELECT seq FROM signals WHERE run_id = ? AND event_id = ?",
                           (run_id, event_id)).fetchone()
        return int(row[0]), False

    def open_signals(self, run_id: str) -> list[tuple[int, str, str | None, str, str]]:
        """(seq, name, event id, payload, status) of the run's pending and deferred signals,
        oldest first."""
        rows = self.execute("SELECT seq, name, event_id, payload, status FROM signals WHERE "
                            "run_id = ? AND status IN ('pending', 'deferred') ORDER BY seq",
                            (run_id,)).fetchall()
        return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def settle_signal(self, seq: int, status: str, state: str | None) -> bool:
        """An open signal was taken (`consumed`) by `state`, or `ignored`, `unhandled` or
        `deferred` there; fenced by its being open, so it is taken at most once."""
        cur = self.execute("UPDATE signals SET status = ?, state = ?, handled_at = {now} "
                           "WHERE seq = ? AND status IN ('pending', 'deferred')",
                           (status, state, seq))
        return int(cur.rowcount) == 1

    def signals_of(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        rows = self.execute(f"SELECT {', '.join(_SIGNAL)} FROM signals WHERE run_id = ? "
                            f"ORDER BY seq LIMIT ?", (run_id, limit)).fetchall()
        return [dict(zip(_SIGNAL, r, strict=True)) for r in rows]

    def signal(self, run_id: str, seq: int | None, event_id: str | None) -> dict[str, Any] | None:
        """One signal of a run, by its seq or by the sender's event id."""
        by, value = ("seq", seq) if seq is not None else ("event_id", event_id)
        row = self.execute(f"SELECT {', '.join(_SIGNAL)} FROM signals WHERE run_id = ? AND "
                           f"{by} = ?", (run_id, value)).fetchone()
        return None if row is None else dict(zip(_SIGNAL, row, strict=True))

    def runs_with_pending_signals(self, fingerprints: Sequence[str], limit: int) -> list[str]:
        """Open runs of these definitions with signals nobody could offer yet (their
        sender had not the machine's code): a worker that has it offers them."""
        if not fingerprints:
            return []
        rows = self.execute(f"SELECT DISTINCT s.run_id FROM signals s JOIN runs r ON "
                            f"r.id = s.run_id WHERE s.status = 'pending' AND r.status IN "
                            f"('pending', 'running', 'needs_attention') AND r.fingerprint "
                            f"IN ({marks(len(fingerprints))}) LIMIT ?",
                            (*fingerprints, limit)).fetchall()
        return [str(r[0]) for r in rows]
