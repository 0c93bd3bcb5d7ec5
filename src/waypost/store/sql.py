"""The store's domain verbs as SQL shared by both dialects.

Each method is one or two statements; atomicity comes from the transaction the caller is
in (`Store.transact`), never from a method alone. SQL is written with `?` placeholders,
`{now}` for the database clock and `{lock}` for a row lock where the dialect has one;
a dialect rewrites them once per statement.

Fencing: every verb that records an attempt's outcome names the attempt's `lease_token`
and requires the lease to be live (or, for the sweeper, expired). A token is issued once
per claim, so an attempt whose lease expired or was taken over matches no row and can
record nothing: that is the whole argument for "at most one outcome per attempt".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .. import codec
from ..context import DEFAULT_HEARTBEAT
from .records import (
    ClaimedStep,
    Expired,
    HeldStep,
    LimitRow,
    LimitUsage,
    NewStep,
    RunRow,
    StepRow,
)

RUN_COLUMNS = ("id", "flow", "fingerprint", "key", "status", "input", "input_checksum",
               "output", "error", "open_steps", "created_at", "started_at", "finished_at")
STEP_COLUMNS = ("id", "name", "node", "kind", "task", "map_index", "status", "waiting_on",
                "attempts", "max_attempts", "timeout", "ready_at", "input", "input_checksum",
                "idempotency_key", "output", "error", "lease_owner", "lease_expires_at",
                "started_at", "finished_at", "heartbeat", "heartbeat_at", "heartbeat_details",
                "completion_token")
_CLEAR_LEASE = ("lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, "
                "timeout_at = NULL, completion_token = NULL")
_LIVE = "lease_expires_at > {now}"
# An attempt is over when its lease ran out, its timeout passed, or it missed 3 heartbeats.
# `heartbeat` is the declared interval, or minus DEFAULT_HEARTBEAT once an attempt of a task
# that declared none has beaten: monitored from that beat, for that attempt only (the next
# claim clears the negative value).
_MISSED_2 = "heartbeat_at + 2 * ABS(heartbeat) <= {now}"  # suspicious
_MISSED_3 = "heartbeat_at + 3 * ABS(heartbeat) <= {now}"
_DEAD = f"(lease_expires_at <= {{now}} OR timeout_at <= {{now}} OR {_MISSED_3})"
_HELD = "id, run_id, name, node, kind, map_index, attempts, max_attempts"
#: A run in one of these may still change; anything else has ended.
OPEN_RUN = "('pending', 'running', 'needs_attention')"
# A completion token works from the moment the task has it: the other system may answer
# before the worker has recorded the hand-off, while the attempt still holds its lease.
_TOKEN_MATCHES = "(completion_token = ? OR (completion_token IS NULL AND lease_token = ?))"
# A grant holds a concurrency slot while its step runs under the grant's lease token: once
# the attempt ends in any way (outcome, expired lease, cancel, hand-off to another system,
# release) the token is gone and so is the slot, with nothing to repair after a crash.
_HOLDS = ("limit_grants g JOIN steps s ON s.id = g.step_id WHERE s.status = 'running' "
          "AND s.lease_token = g.lease_token")
_LIMIT_COLUMNS = "name, rate, rate_count, rate_period, concurrency"


def _lease_part(completion_token: str) -> str:
    return completion_token.rsplit(".", 1)[-1]


def _claimed(row: Sequence[Any], token: str) -> ClaimedStep:
    return ClaimedStep(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6],
                       int(row[7]), row[8], token, row[9], row[10])


def marks(n: int) -> str:
    return ",".join("?" * n)


class SqlTx:
    """Runs the verbs on one connection inside one transaction."""

    NOW = ""
    LOCK = ""
    SKIP_LOCKED = ""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # -- dialect hooks ---------------------------------------------------------------
    def sql(self, text: str) -> str:
        return text.replace("{now}", self.NOW).replace("{lock}", self.LOCK).replace(
            "{skip_locked}", self.SKIP_LOCKED)

    def execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.sql(text), params)

    def executemany(self, text: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(self.sql(text), list(rows))

    def notify(self) -> None:
        """Wake idle workers: steps just became ready."""

    def now(self) -> float:
        return float(self.execute("SELECT {now}").fetchone()[0])

    # -- definitions ------------------------------------------------------------------
    def put_definition(self, fingerprint: str, name: str, kind: str, body: str) -> None:
        self.execute("INSERT INTO definitions (fingerprint, name, kind, body, created_at) "
                     "VALUES (?, ?, ?, ?, {now}) ON CONFLICT (fingerprint) DO NOTHING",
                     (fingerprint, name, kind, body))

    def definition(self, fingerprint: str) -> str | None:
        row = self.execute("SELECT body FROM definitions WHERE fingerprint = ?",
                           (fingerprint,)).fetchone()
        return None if row is None else str(row[0])

    # -- runs ---------------------------------------------------------------------------
    def insert_run(self, run_id: str, flow: str, fingerprint: str, key: str | None,
                   input: str, checksum: str, open_steps: int) -> bool:
        """Insert unless the idempotency key (or the id) exists: the unique constraints are
        the check, never a read before the write."""
        row = self.execute(
            "INSERT INTO runs (id, flow, fingerprint, key, status, input, input_checksum, "
            "open_steps, created_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, {now}) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (run_id, flow, fingerprint, key, input, checksum, open_steps)).fetchone()
        return row is not None

    def run_by_key(self, key: str) -> tuple[str, str, str]:
        row = self.execute("SELECT id, flow, input_checksum FROM runs WHERE key = ?",
                           (key,)).fetchone()
        return str(row[0]), str(row[1]), str(row[2])

    def run_head(self, run_id: str) -> tuple[str, str] | None:
        row = self.execute("SELECT fingerprint, input FROM runs WHERE id = ?",
                           (run_id,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

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

    def run_ids_like(self, prefix: str) -> list[str]:
        rows = self.execute("SELECT id FROM runs WHERE id LIKE ? ORDER BY id LIMIT 2",
                            (prefix + "%",)).fetchall()
        return [str(r[0]) for r in rows]

    def list_runs(self, status: str | None, flow: str | None, limit: int) -> list[RunRow]:
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if flow:
            where.append("(flow = ? OR flow LIKE ?)")
            params += [flow, "%:" + flow]
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
                     "input_checksum = ? WHERE run_id = ? AND name = ?",
                     (input, checksum, run_id, name))

    def start_map(self, run_id: str, name: str, children: int) -> None:
        self.execute("UPDATE steps SET status = 'running', waiting_on = ?, started_at = {now}, "
                     "attempts = 1 WHERE run_id = ? AND name = ?", (children, run_id, name))

    def item_done(self, run_id: str, node: str, count: int = 1) -> int:
        """`count` items of a map ended; returns how many are still open."""
        row = self.execute("UPDATE steps SET waiting_on = waiting_on - ? WHERE run_id = ? AND "
                           "name = ? AND status = 'running' RETURNING waiting_on",
                           (count, run_id, node)).fetchone()
        return int(row[0])

    def map_items(self, run_id: str, node: str) -> list[tuple[str, str | None, str | None]]:
        rows = self.execute("SELECT status, output, error FROM steps WHERE run_id = ? AND "
                            "node = ? AND kind = 'item' ORDER BY map_index",
                            (run_id, node)).fetchall()
        return [(str(r[0]), r[1], r[2]) for r in rows]

    def end_node(self, run_id: str, name: str, status: str, output: str | None,
                 error: str | None) -> None:
        self.execute("UPDATE steps SET status = ?, output = ?, error = ?, finished_at = {now}, "
                     "started_at = COALESCE(started_at, {now}) WHERE run_id = ? AND name = ?",
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

    def reset_step(self, step_id: int, status: str, waiting_on: int, max_attempts: int) -> None:
        self.execute("UPDATE steps SET status = ?, waiting_on = ?, max_attempts = ?, "
                     "error = NULL, output = NULL, finished_at = NULL, ready_at = {now} "
                     "WHERE id = ?", (status, waiting_on, max_attempts, step_id))

    # -- claims, leases and outcomes -------------------------------------------------------
    _CLAIMED = ("id, run_id, name, node, kind, task, input, attempts, idempotency_key, "
                "timeout, heartbeat")

    def claimed_with(self, owner: str, token: str) -> list[ClaimedStep]:
        """Steps already claimed under `token`: a transaction retried after its commit was
        in fact applied (the acknowledgement was lost) finds its own earlier claims here,
        instead of leaving them running with nobody working on them."""
        rows = self.execute(f"SELECT {self._CLAIMED} FROM steps WHERE lease_owner = ? AND "
                            f"lease_token = ? AND status = 'running'", (owner, token)).fetchall()
        return [_claimed(r, token) for r in rows]

    def claim(self, owner: str, token: str, limit: int, lease: float,
              tasks: Sequence[str]) -> list[ClaimedStep]:
        if not tasks or limit < 1:
            return []
        rows = self.execute(
            f"UPDATE steps SET status = 'running', attempts = attempts + 1, lease_owner = ?, "
            f"lease_token = ?, lease_expires_at = {{now}} + ?, started_at = {{now}}, "
            f"finished_at = NULL, timeout_at = {{now}} + timeout, heartbeat_at = {{now}}, "
            f"heartbeat_details = NULL, "
            f"heartbeat = CASE WHEN heartbeat < 0 THEN NULL ELSE heartbeat END "
            f"WHERE id IN (SELECT id FROM steps WHERE status = 'ready' AND ready_at <= {{now}} "
            f"AND task IN ({marks(len(tasks))}) ORDER BY ready_at, id LIMIT ? {{skip_locked}}) "
            f"RETURNING {self._CLAIMED}", (owner, token, lease, *tasks, limit)).fetchall()
        return [_claimed(r, token) for r in rows]

    def next_ready_at(self, tasks: Sequence[str]) -> float | None:
        if not tasks:
            return None
        row = self.execute(f"SELECT MIN(ready_at) FROM steps WHERE status = 'ready' AND "
                           f"task IN ({marks(len(tasks))})", tasks).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def succeed_many(self, done: Sequence[tuple[int, str, str]]) -> list[HeldStep | None]:
        """Record successful attempts (step id, lease token, output); None where the token
        no longer holds the step."""
        return [self.succeed(*d) for d in done]

    SUCCEED = (
        f"UPDATE steps SET status = 'succeeded', output = ?, error = NULL, "
        f"finished_at = {{now}}, {_CLEAR_LEASE} WHERE id = ? AND lease_token = ? AND "
        f"status = 'running' AND {_LIVE} AND (timeout_at IS NULL OR timeout_at > {{now}}) "
        f"RETURNING id, run_id, name, node, kind, map_index, attempts, max_attempts")

    def succeed(self, step_id: int, token: str, output: str) -> HeldStep | None:
        row = self.execute(self.SUCCEED, (output, step_id, token)).fetchone()
        return None if row is None else HeldStep(*row)

    def expire_queued(self, error: str, limit: int) -> list[HeldStep]:
        """Fail ready steps that waited longer than their queue_timeout for a worker. The
        update is its own fence: a step claimed meanwhile is no longer ready."""
        rows = self.execute(
            "UPDATE steps SET status = 'failed', error = ?, finished_at = {now} "
            "WHERE id IN (SELECT id FROM steps WHERE status = 'ready' AND "
            "queue_timeout IS NOT NULL AND ready_at + queue_timeout <= {now} "
            "ORDER BY ready_at LIMIT ? {skip_locked}) AND status = 'ready' "
            "RETURNING id, run_id, name, node, kind, map_index, attempts, max_attempts",
            (error, limit)).fetchall()
        return [HeldStep(*r) for r in rows]

    def hand_off(self, step_id: int, token: str, completion_token: str) -> bool:
        """The task handed its work to another system: the step stays running, holds no
        lease (nobody is working on it here), and waits for `completion_token`."""
        cur = self.execute(
            f"UPDATE steps SET completion_token = ?, lease_owner = NULL, lease_token = NULL, "
            f"lease_expires_at = NULL WHERE id = ? AND lease_token = ? AND status = 'running' "
            f"AND {_LIVE}", (completion_token, step_id, token))
        return int(cur.rowcount) == 1

    def complete_external(self, step_id: int, completion_token: str,
                          output: str) -> HeldStep | None:
        row = self.execute(
            f"UPDATE steps SET status = 'succeeded', output = ?, error = NULL, "
            f"finished_at = {{now}}, {_CLEAR_LEASE} WHERE id = ? AND {_TOKEN_MATCHES} "
            f"AND status = 'running' "
            f"RETURNING id, run_id, name, node, kind, map_index, attempts, max_attempts",
            (output, step_id, completion_token, _lease_part(completion_token))).fetchone()
        return None if row is None else HeldStep(*row)

    def fail_external(self, step_id: int, completion_token: str,
                      error: str) -> HeldStep | None:
        row = self.execute(
            f"SELECT id, run_id, name, node, kind, map_index, attempts, max_attempts, "
            f"started_at FROM steps WHERE id = ? AND {_TOKEN_MATCHES} AND "
            f"status = 'running' {{lock}}",
            (step_id, completion_token, _lease_part(completion_token))).fetchone()
        if row is None:
            return None
        self.execute("INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                     "started_at, finished_at) VALUES (?, ?, NULL, 'failed', ?, ?, {now})",
                     (step_id, row[6], error, row[8]))
        return HeldStep(*row[:8])

    def end_attempt(self, step_id: int, token: str, outcome: str, error: str,
                    expired: bool) -> HeldStep | None:
        """Record a failed or lost attempt, if `token` still holds the step (live lease for
        a worker's report, expired lease for the sweeper's)."""
        cond = _DEAD if expired else _LIVE
        row = self.execute(
            f"SELECT id, run_id, name, node, kind, map_index, attempts, max_attempts, "
            f"lease_owner, started_at FROM steps WHERE id = ? AND lease_token = ? AND "
            f"status = 'running' AND {cond} {{lock}}", (step_id, token)).fetchone()
        if row is None:
            return None
        self.execute("INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                     "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, {now})",
                     (step_id, row[6], row[8], outcome, error, row[9]))
        return HeldStep(*row[:8])

    def retry_later(self, step_id: int, delay: float, error: str,
                    extra_attempt: bool = False) -> None:
        """Back to ready after `delay`; `extra_attempt` adds one to the step's budget (an
        attempt that was not the task's fault)."""
        self.execute(f"UPDATE steps SET status = 'ready', ready_at = {{now}} + ?, error = ?, "
                     f"max_attempts = max_attempts + ?, {_CLEAR_LEASE} WHERE id = ?",
                     (delay, error, int(extra_attempt), step_id))

    def lost_attempts(self, step_id: int) -> int:
        row = self.execute("SELECT COUNT(*) FROM attempts WHERE step_id = ? AND "
                           "outcome = 'lost'", (step_id,)).fetchone()
        return int(row[0])

    def fail(self, step_id: int, error: str) -> None:
        self.execute(f"UPDATE steps SET status = 'failed', error = ?, finished_at = {{now}}, "
                     f"{_CLEAR_LEASE} WHERE id = ?", (error, step_id))

    def renew(self, owner: str, lease: float) -> set[tuple[int, str]]:
        """Extend the leases `owner` still holds; returns their (step id, lease token):
        an attempt it thinks it holds that is not among them was lost or cancelled."""
        rows = self.execute(f"UPDATE steps SET lease_expires_at = {{now}} + ? WHERE "
                            f"lease_owner = ? AND status = 'running' AND {_LIVE} "
                            f"RETURNING id, lease_token", (lease, owner)).fetchall()
        return {(int(r[0]), str(r[1])) for r in rows}

    def beat(self, step_id: int, token: str, details: str) -> None:
        self.execute(f"UPDATE steps SET heartbeat_at = {{now}}, heartbeat_details = ?, "
                     f"heartbeat = COALESCE(heartbeat, ?) WHERE id = ? AND lease_token = ? "
                     f"AND status = 'running' AND {_LIVE}",
                     (details, -DEFAULT_HEARTBEAT, step_id, token))

    def expired(self, limit: int) -> list[Expired]:
        rows = self.execute(
            f"SELECT id, run_id, lease_token, lease_owner, CASE WHEN timeout_at <= {{now}} THEN "
            f"'timeout' WHEN {_MISSED_3} THEN 'heartbeat' ELSE 'lost' END "
            f"FROM steps WHERE status = 'running' AND "
            f"lease_token IS NOT NULL AND {_DEAD} ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Expired(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def release_held(self, owner: str) -> int:
        """Give back what a stopping worker holds, without charging an attempt."""
        cur = self.execute(f"UPDATE steps SET status = 'ready', attempts = attempts - 1, "
                           f"ready_at = {{now}}, started_at = NULL, {_CLEAR_LEASE} "
                           f"WHERE lease_owner = ? AND status = 'running'", (owner,))
        return int(cur.rowcount)

    def expire_owner(self, owner: str) -> int:
        cur = self.execute("UPDATE steps SET lease_expires_at = {now} WHERE lease_owner = ? "
                           "AND status = 'running'", (owner,))
        return int(cur.rowcount)

    # -- waiting: gates, sleeps, escalations ------------------------------------------------
    def make_waiting(self, run_id: str, name: str, due: float | None) -> None:
        self.execute("UPDATE steps SET status = 'waiting', ready_at = ?, started_at = {now} "
                     "WHERE run_id = ? AND name = ?", (due, run_id, name))

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
                     f"ready_at = {{now}} + ?, {_CLEAR_LEASE} WHERE id = ?",
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

    # -- dead letters and retry budgets ---------------------------------------------------
    def add_dead_letter(self, step_id: int, error: str) -> None:
        self.execute("INSERT INTO dead_letters (run_id, step_id, step, task, input, error, "
                     "attempts, status, created_at) SELECT run_id, id, name, task, input, ?, "
                     "attempts, 'dead', {now} FROM steps WHERE id = ?", (error, step_id))

    _LETTER = ("id", "run_id", "step_id", "step", "task", "input", "error", "attempts",
               "status", "created_at", "replayed_at", "replay_input")

    def dead_letters(self, status: str | None, run_id: str | None,
                     limit: int) -> list[dict[str, Any]]:
        where, params = [], []
        if status:
            where.append("status = ?")
            params.append(status)
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.execute(f"SELECT {', '.join(self._LETTER)} FROM dead_letters {clause} "
                            f"ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [dict(zip(self._LETTER, r, strict=True)) for r in rows]

    def dead_letter(self, letter_id: int) -> dict[str, Any] | None:
        row = self.execute(f"SELECT {', '.join(self._LETTER)} FROM dead_letters WHERE id = ? "
                           f"{{lock}}", (letter_id,)).fetchone()
        return None if row is None else dict(zip(self._LETTER, row, strict=True))

    def attempts_of_step(self, step_id: int) -> list[dict[str, Any]]:
        rows = self.execute("SELECT attempt, worker, outcome, error, started_at, finished_at "
                            "FROM attempts WHERE step_id = ? ORDER BY attempt",
                            (step_id,)).fetchall()
        cols = ("attempt", "worker", "outcome", "error", "started_at", "finished_at")
        return [dict(zip(cols, r, strict=True)) for r in rows]

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
    # -- limits ----------------------------------------------------------------------------
    def put_limits(self, limits: Sequence[LimitRow]) -> None:
        self.executemany(
            "INSERT INTO limits (name, rate, rate_count, rate_period, concurrency, updated_at) "
            "VALUES (?, ?, ?, ?, ?, {now}) ON CONFLICT (name) DO UPDATE SET "
            "rate = excluded.rate, rate_count = excluded.rate_count, "
            "rate_period = excluded.rate_period, concurrency = excluded.concurrency, "
            "updated_at = excluded.updated_at",
            [(x.name, x.rate, x.rate_count, x.rate_period, x.concurrency) for x in limits])

    def get_limits(self, names: Sequence[str]) -> list[LimitRow]:
        if not names:
            return []
        rows = self.execute(f"SELECT {_LIMIT_COLUMNS} FROM limits WHERE "
                            f"name IN ({marks(len(names))}) ORDER BY name", names).fetchall()
        return [LimitRow(*r) for r in rows]

    def ready_among(self, groups: Sequence[Sequence[str]]) -> list[bool]:
        """For each group of tasks, whether a step of one of them is ready to claim."""
        if not groups:
            return []
        probe = ("CASE WHEN EXISTS (SELECT 1 FROM steps WHERE status = 'ready' AND "
                 "ready_at <= {now} AND task IN (%s)) THEN 1 ELSE 0 END")
        row = self.execute("SELECT " + ", ".join(probe % marks(len(g)) for g in groups),
                           [t for g in groups for t in g]).fetchone()
        return [bool(v) for v in row]

    def lock_limits(self, names: Sequence[str]) -> list[LimitRow]:
        """Lock the named limits until the transaction ends (in name order, so claims
        never wait on each other in a cycle) and return their definitions."""
        rows = self.execute(f"SELECT {_LIMIT_COLUMNS} FROM limits WHERE "
                            f"name IN ({marks(len(names))}) ORDER BY name {{lock}}",
                            names).fetchall()
        return [LimitRow(*r) for r in rows]

    def limit_usage(self, name: str, window: float | None, rate_count: int | None,
                    concurrency: bool) -> LimitUsage:
        """How much of a limit is in use. Run it after `lock_limits`: a statement of its
        own sees what the previous holder of the lock committed."""
        parts: list[str] = []
        params: list[Any] = []
        if window is not None and rate_count is not None:
            parts.append("(SELECT COUNT(*) FROM limit_grants WHERE limit_name = ? AND "
                         "granted_at > {now} - ?)")
            parts.append("(SELECT granted_at FROM limit_grants WHERE limit_name = ? AND "
                         "granted_at > {now} - ? ORDER BY granted_at DESC LIMIT 1 OFFSET ?)")
            params += [name, window, name, window, rate_count - 1]
        else:
            parts += ["0", "NULL"]
        if concurrency:
            parts.append(f"(SELECT COUNT(*) FROM {_HOLDS} AND g.limit_name = ?)")
            params.append(name)
        else:
            parts.append("0")
        row = self.execute(f"SELECT {', '.join(parts)}, {{now}}", params).fetchone()
        return LimitUsage(int(row[0]), int(row[2]), None if row[1] is None else float(row[1]),
                          float(row[3]))

    def add_grants(self, grants: Sequence[tuple[str, int, str]]) -> None:
        """Record (limit, step id, lease token) grants, all at this statement's time."""
        if grants:
            values = ", ".join(["(?, ?, ?, {now})"] * len(grants))
            self.execute(f"INSERT INTO limit_grants (limit_name, step_id, lease_token, "
                         f"granted_at) VALUES {values}", [v for g in grants for v in g])

    def prune_grants(self, margin: float) -> int:
        """Forget grants that are out of their rate window and hold no slot."""
        cur = self.execute(
            "DELETE FROM limit_grants WHERE granted_at <= {now} - ? - COALESCE((SELECT "
            "rate_period FROM limits WHERE limits.name = limit_grants.limit_name), 0) "
            "AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.id = limit_grants.step_id AND "
            "s.status = 'running' AND s.lease_token = limit_grants.lease_token)", (margin,))
        return int(cur.rowcount)

    def limits_in_use(self, margin: float,
                      names: Sequence[str] | None = None) -> list[tuple[LimitRow, int, int]]:
        """Every limit (or the named ones) with its grants in the current rate window and
        the attempts holding a slot now."""
        where = "" if names is None else f"WHERE l.name IN ({marks(len(names))})"
        if names is not None and not names:
            return []
        rows = self.execute(
            f"SELECT l.name, l.rate, l.rate_count, l.rate_period, l.concurrency, "
            f"(SELECT COUNT(*) FROM limit_grants g WHERE g.limit_name = l.name AND "
            f"g.granted_at > {{now}} - l.rate_period - ?), "
            f"(SELECT COUNT(*) FROM {_HOLDS} AND g.limit_name = l.name) "
            f"FROM limits l {where} ORDER BY l.name", (margin, *(names or ()))).fetchall()
        return [(LimitRow(*r[:5]), int(r[5]), int(r[6])) for r in rows]

    # -- workers and leader election -------------------------------------------------------
    def register_worker(self, worker_id: str, host: str, pid: int, tasks: str) -> None:
        self.execute("INSERT INTO workers (id, host, pid, started_at, heartbeat_at, tasks) "
                     "VALUES (?, ?, ?, {now}, {now}, ?) ON CONFLICT (id) DO UPDATE SET "
                     "heartbeat_at = excluded.heartbeat_at", (worker_id, host, pid, tasks))

    def served_tasks(self, fresh_within: float) -> set[str]:
        """Tasks some worker with a recent heartbeat serves."""
        rows = self.execute("SELECT tasks FROM workers WHERE heartbeat_at > {now} - ?",
                            (fresh_within,)).fetchall()
        return {t for r in rows if r[0] for t in codec.loads(r[0])}

    def worker_alive(self, worker_id: str) -> None:
        self.execute("UPDATE workers SET heartbeat_at = {now} WHERE id = ?", (worker_id,))

    def remove_worker(self, worker_id: str) -> None:
        """Forget a worker and give up the leases (the sweeper's) it held."""
        self.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
        self.execute("DELETE FROM leases WHERE owner = ?", (worker_id,))

    def workers_on(self, host: str) -> list[tuple[str, int]]:
        rows = self.execute("SELECT id, pid FROM workers WHERE host = ?", (host,)).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def forget_stale_workers(self, older_than: float) -> None:
        self.execute("DELETE FROM workers WHERE heartbeat_at < {now} - ?", (older_than,))

    def try_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or keep a named lease (the sweeper's election)."""
        row = self.execute(
            "INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, {now} + ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at WHERE leases.owner = excluded.owner "
            "OR leases.expires_at < {now} RETURNING owner", (name, owner, seconds)).fetchone()
        return row is not None
