"""Runs: creation under an idempotency key, status changes, listing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ... import codec
from ..records import RunRow
from .core import (
    _CLEAR_LEASE,
    _MISSED_2,
    OPEN_RUN,
    RUN_COLUMNS,
    SqlCore,
    marks,
)

#: What `lock_run` reads: the run, and a machine's position (a sender decides from it).
_LOCKED = (*RUN_COLUMNS, "state", "data", "transitions")
_FIELD = re.compile(r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*=\s*(.*?)\s*", re.ASCII)


def as_stored(text: str) -> str:
    """Text as it appears inside stored JSON, where what is beyond ASCII is escaped."""
    return "".join(c if ord(c) < 128 else codec.dumps(c)[1:-1] for c in text)


def input_field(search: str) -> tuple[list[str], str] | None:
    """A runs search written `NAME=VALUE` (`customer.id=42`) asks for runs whose input has
    that field at that value, rather than for the text: (the field's path, the value as
    canonical JSON). A value that reads as a JSON scalar (42, true, "42") is that value;
    anything else is the string as typed."""
    found = _FIELD.fullmatch(search)
    if found is None:
        return None
    path, text = found.group(1).split("."), found.group(2)
    try:
        value: Any = codec.loads(text)
        if not isinstance(value, (list, dict)):
            return path, codec.dumps(value)
    except (ValueError, TypeError, RecursionError):  # not JSON, or NaN and the like
        pass
    return path, codec.dumps(text)


class RunVerbs(SqlCore):
    # -- runs ---------------------------------------------------------------------------
    def insert_run(self, run_id: str, definition: str, fingerprint: str, key: str | None,
                   input: str, checksum: str, open_steps: int,
                   correlation: str | None = None, trigger: int | None = None,
                   lane: str | None = None) -> bool:
        """Insert unless the idempotency key (or the id) exists: the unique constraints are
        the check, never a read before the write."""
        row = self.execute(
            "INSERT INTO runs (id, definition, fingerprint, key, status, input, input_checksum, "
            "open_steps, created_at, correlation_id, trigger_event, lane) VALUES (?, ?, ?, ?, "
            "'pending', ?, ?, ?, {now}, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
            (run_id, definition, fingerprint, key, input, checksum, open_steps, correlation,
             trigger, lane)).fetchone()
        return row is not None

    def run_by_key(self, key: str) -> tuple[str, str, str]:
        row = self.execute("SELECT id, definition, input_checksum FROM runs WHERE key = ?",
                           (key,)).fetchone()
        return str(row[0]), str(row[1]), str(row[2])

    def run_id_by_key(self, key: str) -> str | None:
        row = self.execute("SELECT id FROM runs WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def link_child(self, child: str, parent: str, step: str) -> None:
        self.execute("UPDATE runs SET parent_run = ?, parent_step = ?, correlation_id = "
                     "(SELECT COALESCE(correlation_id, id) FROM runs WHERE id = ?) WHERE id = ?",
                     (parent, step, parent, child))

    def parent_of(self, run_id: str) -> tuple[str, str] | None:
        row = self.execute("SELECT parent_run, parent_step FROM runs WHERE id = ? AND "
                           "parent_run IS NOT NULL", (run_id,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def children_of(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.execute("SELECT id, definition, status, parent_step FROM runs WHERE "
                            "parent_run = ? ORDER BY created_at, id", (run_id,)).fetchall()
        return [{"id": r[0], "definition": r[1], "status": r[2], "step": r[3]} for r in rows]

    def run_head(self, run_id: str) -> tuple[str, str, str | None, str | None] | None:
        row = self.execute("SELECT fingerprint, input, parent_run, lane FROM runs WHERE id = ?",
                           (run_id,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), row[2], row[3])

    def add_open(self, run_id: str, delta: int) -> int:
        row = self.execute("UPDATE runs SET open_steps = open_steps + ? WHERE id = ? "
                           "RETURNING open_steps", (delta, run_id)).fetchone()
        return int(row[0])

    def finish_run(self, run_id: str, status: str, output: str | None,
                   error: str | None) -> None:
        self.execute("UPDATE runs SET status = ?, output = ?, error = ?, finished_at = {now}, "
                     "started_at = COALESCE(started_at, {now}) WHERE id = ? AND "
                     "status IN ('pending', 'running', 'needs_attention', 'compensating')",
                     (status, output, error, run_id))

    def mark_runs_running(self, run_ids: Sequence[str]) -> None:
        self.execute(f"UPDATE runs SET status = 'running', started_at = {{now}} "
                     f"WHERE id IN ({marks(len(run_ids))}) AND status = 'pending'", run_ids)

    def reopen_run(self, run_id: str, open_steps: int) -> None:
        """A resumed run starts afresh: a deadline it had has passed or no longer applies."""
        self.execute("UPDATE runs SET status = 'running', error = NULL, output = NULL, "
                     "finished_at = NULL, deadline_at = NULL, open_steps = ? WHERE id = ?",
                     (open_steps, run_id))

    def set_deadline(self, run_id: str, seconds: float) -> None:
        self.execute("UPDATE runs SET deadline_at = created_at + ? WHERE id = ?",
                     (seconds, run_id))

    def overdue_runs(self, limit: int) -> list[str]:
        rows = self.execute("SELECT id FROM runs WHERE deadline_at <= {now} AND status IN "
                            f"{OPEN_RUN} ORDER BY deadline_at LIMIT ?",
                            (limit,)).fetchall()
        return [str(r[0]) for r in rows]

    def cancel_steps(self, run_id: str, error: str) -> int:
        """End every unfinished step of a run: running attempts are recorded as cancelled
        (their workers find out at their next lease renewal), the rest never start."""
        self.execute("INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                     "started_at, finished_at) SELECT id, attempts, lease_owner, 'cancelled', "
                     "?, started_at, {now} FROM steps WHERE run_id = ? AND status = 'running' "
                     "AND kind != 'map'", (error, run_id))
        cur = self.execute(f"UPDATE steps SET status = 'cancelled', error = ?, "
                           f"finished_at = {{now}}, {_CLEAR_LEASE} WHERE run_id = ? AND "
                           f"status IN ('pending', 'ready', 'running', 'waiting', "
                           f"'needs_attention')", (error, run_id))
        return int(cur.rowcount)

    def end_run(self, run_id: str, status: str, error: str) -> bool:
        """End a run early; False if it had already ended (the check and the write are one
        statement, so a run finishing concurrently is never overwritten)."""
        row = self.execute("UPDATE runs SET status = ?, error = ?, open_steps = 0, "
                           "finished_at = {now}, started_at = COALESCE(started_at, {now}) "
                           f"WHERE id = ? AND status IN {OPEN_RUN} RETURNING id",
                           (status, error, run_id)).fetchone()
        return row is not None

    def get_run(self, run_id: str) -> RunRow | None:
        row = self.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE id = ?",
                           (run_id,)).fetchone()
        return None if row is None else dict(zip(RUN_COLUMNS, row, strict=True))

    def lock_run(self, run_id: str) -> RunRow | None:
        """Read a run and hold its row until the transaction ends (PostgreSQL; SQLite's
        writer lock already does): operators' writes to one run happen one after another,
        each seeing what the previous one committed."""
        row = self.execute(f"SELECT {', '.join(_LOCKED)} FROM runs WHERE id = ? {{lock}}",
                           (run_id,)).fetchone()
        return None if row is None else dict(zip(_LOCKED, row, strict=True))

    def run_ids_like(self, prefix: str) -> list[str]:
        """Up to two ids that start with `prefix`, taken literally: LIKE would read `%` and
        `_` in it as wildcards (and SQLite's ignores case)."""
        rows = self.execute("SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 2",
                            (len(prefix), prefix)).fetchall()
        return [str(r[0]) for r in rows]

    def list_runs(self, status: str | None, definition: str | None, limit: int, *,
                  kind: str | None = None, key: str | None = None, since: float | None = None,
                  until: float | None = None, search: str | None = None,
                  before: tuple[float, str] | None = None) -> list[RunRow]:
        where: list[str] = []
        params: list[object] = []
        if status:
            where.append("status = ?")
            params.append(status)
        if definition:  # the full name, or the part after MODULE:, matched literally
            where.append("(definition = ? OR substr(definition, length(definition) - ? + 1) "
                         "= ?)")
            params += [definition, len(definition) + 1, ":" + definition]
        if kind:
            where.append("fingerprint IN (SELECT fingerprint FROM definitions WHERE kind = ?)")
            params.append(kind)
        if key is not None:
            where.append("key = ?")
            params.append(key)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if until is not None:
            where.append("created_at < ?")
            params.append(until)
        field = input_field(search) if search else None
        if field is not None:  # NAME=VALUE: that field of the input has that value
            where.append(self.INPUT_AT)
            params += [self._json_path(field[0]), field[1]]
        elif search:  # literally, inside the input's JSON text
            where.append(self.INPUT_HAS)
            params.append(as_stored(search))
        if before is not None:  # keyset: the page after a run already shown
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs {clause} "
                            "ORDER BY created_at DESC, id DESC LIMIT ?",
                            (*params, limit)).fetchall()
        return [dict(zip(RUN_COLUMNS, r, strict=True)) for r in rows]

    def step_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(succeeded, all, suspicious) steps of each run."""
        if not run_ids:
            return {}
        rows = self.execute(
            f"SELECT run_id, SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END), COUNT(*), "
            f"SUM(CASE WHEN status = 'running' AND {_MISSED_2} THEN 1 ELSE 0 END) "
            f"FROM steps WHERE run_id IN ({marks(len(run_ids))}) GROUP BY run_id",
            run_ids).fetchall()
        return {str(r[0]): (int(r[1]), int(r[2]), int(r[3] or 0)) for r in rows}
