"""Workers, their incarnations and leases, and leader election by a named lease.

A restarted worker under the same id is a new incarnation: what the old one held is expired
at once rather than waiting for its leases to run out."""

from __future__ import annotations

from typing import Protocol

from ..records import WorkerRow


class WorkerVerbs(Protocol):
    def expire_owner(self, owner: str) -> int:
        """Mark `owner`'s leases run out now (its process is known dead), so the sweeper
        takes them at once. One statement, fenced by `owner` and `running`."""

    def register_worker(self, worker_id: str, host: str, pid: int, tasks: str,
                        incarnation: str | None = None, boot_id: str | None = None,
                        pid_ns: str | None = None, lease: float | None = None,
                        definitions: str | None = None) -> WorkerRow | None:
        """Register this incarnation of a worker (pid, boot id, pid namespace, lease, and
        the JSON {name: fingerprint} of the machine definitions its code has);
        returns the row of an earlier incarnation under the same id, whose leases are
        expired here at once. Needs the caller's transaction; the old row is locked."""

    def served_tasks(self, fresh_within: float) -> set[str]:
        """Tasks served by workers that beat within `fresh_within` seconds. One statement."""

    def worker_alive(self, worker_id: str) -> None:
        """A worker's heartbeat. One statement."""

    def remove_worker(self, worker_id: str, incarnation: str | None = None) -> bool:
        """Forget a worker (with `incarnation`, only that one) and the named leases it
        held; False if that incarnation was gone. Two statements: needs the caller's
        transaction."""

    def expire_leases(self, owner: str, tokens: list[str]) -> int:
        """Mark the leases `owner` holds under `tokens` run out now (its own attempts,
        which it can no longer run). One statement per 500 tokens, fenced by `owner`, the
        tokens and `running`."""

    def workers_on(self, host: str) -> list[WorkerRow]:
        """The workers registered on `host`, locked (PostgreSQL) while a judgement on them
        is made. One statement."""

    def workers_named(self, ids: list[str]) -> dict[str, WorkerRow]:
        """The registered workers among `ids`, by id. One statement, a read."""

    def workers(self) -> list[WorkerRow]:
        """Every registered worker. One statement, a read."""

    def forget_stale_workers(self, older_than: float) -> None:
        """Forget workers silent for `older_than` seconds. One statement."""

    def try_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or keep the named lease for `seconds`: True if `owner` now holds it. One
        statement, fenced by the holder being `owner` or its lease having run out, so
        at most one owner holds it at a time."""
