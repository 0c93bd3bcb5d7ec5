"""Workers and leader election."""

from __future__ import annotations

from ... import codec
from .core import (
    SqlCore,
)


class WorkerVerbs(SqlCore):
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
