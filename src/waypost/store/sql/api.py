"""The HTTP API's own rows: its tokens, kept as digests."""

from __future__ import annotations

from typing import Any

from .core import SqlCore


class ApiVerbs(SqlCore):
    def api_tokens(self) -> dict[str, str]:
        rows = self.execute("SELECT digest, name FROM api_tokens").fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def add_api_token(self, name: str, digest: str) -> bool:
        row = self.execute("INSERT INTO api_tokens (name, digest, created_at) VALUES "
                           "(?, ?, {now}) ON CONFLICT (name) DO NOTHING RETURNING name",
                           (name, digest)).fetchone()
        return row is not None

    def metrics(self) -> dict[str, Any]:
        """What `/metrics` shows of the whole store, as of the database's clock: steps by
        definition, task and status (with attempts and retries spent), dead letters by
        task, the ready queue (depth and oldest), timers due, lease expiries, deliveries
        pending per handler."""
        steps = self.execute(
            "SELECT r.flow, s.task, s.status, COUNT(*), SUM(s.attempts), "
            "SUM(CASE WHEN s.attempts > 1 THEN s.attempts - 1 ELSE 0 END) FROM steps s "
            "JOIN runs r ON r.id = s.run_id WHERE s.kind NOT IN ('gate', 'sleep', 'event', "
            "'child') GROUP BY r.flow, s.task, s.status").fetchall()
        letters = self.execute("SELECT task, status, COUNT(*) FROM dead_letters GROUP BY "
                               "task, status").fetchall()
        ready = self.execute("SELECT COUNT(*), {now} - MIN(ready_at) FROM steps WHERE "
                             "status = 'ready'").fetchone()
        due = self.execute("SELECT COUNT(*) FROM steps WHERE status IN ('waiting', "
                           "'needs_attention') AND ready_at <= {now}").fetchone()
        lost = self.execute("SELECT outcome, COUNT(*) FROM attempts WHERE outcome IN "
                            "('lost', 'timeout', 'heartbeat') GROUP BY outcome").fetchall()
        pending = self.execute(
            "SELECT r.flow, COUNT(*) FROM runs r JOIN definitions d ON d.fingerprint = "
            "r.fingerprint WHERE d.kind = 'handler' AND r.status IN ('pending', 'running', "
            "'needs_attention') GROUP BY r.flow").fetchall()
        queued = self.execute("SELECT subscription, COUNT(*) FROM lane_queue GROUP BY "
                              "subscription").fetchall()
        waiting: dict[str, int] = {str(r[0]): int(r[1]) for r in pending}
        for name, count in queued:
            waiting[str(name)] = waiting.get(str(name), 0) + int(count)
        return {
            "steps": [(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4] or 0),
                       int(r[5] or 0)) for r in steps],
            "dead_letters": [(str(r[0]), str(r[1]), int(r[2])) for r in letters],
            "ready": int(ready[0]), "oldest_ready": float(ready[1] or 0.0),
            "timers_due": int(due[0]),
            "expiries": {str(r[0]): int(r[1]) for r in lost},
            "deliveries_pending": waiting}
