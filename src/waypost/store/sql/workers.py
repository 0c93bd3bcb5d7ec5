"""Workers and leader election."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import codec
from ..records import WorkerRow
from .core import (
    SqlCore,
    marks,
)

_WORKER = ("id, host, pid, incarnation, boot_id, pid_ns, lease, started_at, heartbeat_at, tasks, "
           "definitions")


def _worker(r: Sequence[Any]) -> WorkerRow:
    return WorkerRow(str(r[0]), str(r[1]), int(r[2]), r[3], r[4], r[5],
                     None if r[6] is None else float(r[6]), float(r[7]), float(r[8]),
                     sorted(codec.loads(r[9])) if r[9] else [],
                     dict(codec.loads(r[10])) if r[10] else {})


class WorkerVerbs(SqlCore):
    # -- workers and leader election -------------------------------------------------------
    def register_worker(self, worker_id: str, host: str, pid: int, tasks: str,
                        incarnation: str | None = None, boot_id: str | None = None,
                        pid_ns: str | None = None, lease: float | None = None,
                        definitions: str | None = None) -> WorkerRow | None:
        """Register this incarnation of a worker; returns the row it replaced, if any.

        A row under the same id is an earlier incarnation (a process killed and restarted
        with the same `--name`): the leases still held under that name are expired here, at
        once, so the sweeper gives their attempts back as lost. This incarnation renews only
        what it claims itself, by token, and holds nothing yet."""
        row = self.execute(f"SELECT {_WORKER} FROM workers WHERE id = ? {{lock}}",
                           (worker_id,)).fetchone()
        self.execute("INSERT INTO workers (id, host, pid, incarnation, boot_id, pid_ns, lease, "
                     "started_at, heartbeat_at, tasks, definitions) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, {now}, {now}, ?, ?) ON CONFLICT (id) DO UPDATE "
                     "SET host = excluded.host, pid = excluded.pid, "
                     "incarnation = excluded.incarnation, boot_id = excluded.boot_id, "
                     "pid_ns = excluded.pid_ns, lease = excluded.lease, "
                     "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
                     "tasks = excluded.tasks, definitions = excluded.definitions",
                     (worker_id, host, pid, incarnation, boot_id, pid_ns, lease, tasks,
                      definitions))
        if row is None or (incarnation is not None and row[3] == incarnation):
            return None  # new, or this transaction's own earlier try (a lost commit ack)
        self.expire_owner(worker_id)
        return _worker(row)

    def served_tasks(self, fresh_within: float) -> set[str]:
        """Tasks some worker with a recent heartbeat serves."""
        rows = self.execute("SELECT tasks FROM workers WHERE heartbeat_at > {now} - ?",
                            (fresh_within,)).fetchall()
        return {t for r in rows if r[0] for t in codec.loads(r[0])}

    def worker_alive(self, worker_id: str) -> None:
        self.execute("UPDATE workers SET heartbeat_at = {now} WHERE id = ?", (worker_id,))

    def remove_worker(self, worker_id: str, incarnation: str | None = None) -> bool:
        """Forget a worker and give up the leases (the sweeper's) it held. With an
        `incarnation`, only that one: a later incarnation under the same name stays."""
        if incarnation is None:
            cur = self.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
        else:
            cur = self.execute("DELETE FROM workers WHERE id = ? AND incarnation = ?",
                               (worker_id, incarnation))
        if int(cur.rowcount) == 0 and incarnation is not None:
            return False
        self.execute("DELETE FROM leases WHERE owner = ?", (worker_id,))
        return True

    def expire_owner(self, owner: str) -> int:
        """Expire every lease held under `owner` (a worker known to be gone): the sweeper
        then gives the attempts back as lost, at once."""
        cur = self.execute("UPDATE steps SET lease_expires_at = {now} WHERE lease_owner = ? "
                           "AND status = 'running'", (owner,))
        return int(cur.rowcount)

    def expire_leases(self, owner: str, tokens: list[str]) -> int:
        """Expire the leases `owner` holds under `tokens` (its own attempts, which it can no
        longer run)."""
        expired = 0
        for i in range(0, len(tokens), 500):
            chunk = tokens[i:i + 500]
            cur = self.execute(f"UPDATE steps SET lease_expires_at = {{now}} WHERE "
                               f"lease_owner = ? AND lease_token IN ({marks(len(chunk))}) AND "
                               f"status = 'running'", (owner, *chunk))
            expired += int(cur.rowcount)
        return expired

    def workers_on(self, host: str) -> list[WorkerRow]:
        """The workers registered from `host`, locked (PostgreSQL) so that a worker
        re-registering under the same name waits until a judgement on its old row is done."""
        rows = self.execute(f"SELECT {_WORKER} FROM workers WHERE host = ? ORDER BY id {{lock}}",
                            (host,)).fetchall()
        return [_worker(r) for r in rows]

    def workers_named(self, ids: list[str]) -> dict[str, WorkerRow]:
        rows = self.execute(f"SELECT {_WORKER} FROM workers WHERE id IN ({marks(len(ids))})",
                            ids).fetchall() if ids else []
        return {w.id: w for w in map(_worker, rows)}

    def workers(self) -> list[WorkerRow]:
        rows = self.execute(f"SELECT {_WORKER} FROM workers ORDER BY id").fetchall()
        return [_worker(r) for r in rows]

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
