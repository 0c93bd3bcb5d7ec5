"""The database itself, definitions (flows, machines, handlers), and operators' requests
that recognise their own earlier commit."""

from __future__ import annotations

from typing import Protocol


class CoreVerbs(Protocol):
    def now(self) -> float:
        """The database's clock. One statement; on PostgreSQL the statement's start time."""

    def notify(self) -> None:
        """Wake idle workers of this store once the transaction commits (PostgreSQL NOTIFY,
        delivered only on commit); nothing on SQLite, whose workers poll."""

    def put_definition(self, fingerprint: str, name: str, kind: str, body: str) -> None:
        """Store a definition (a flow, machine or handler) under its fingerprint; an existing
        one is kept as it is (same fingerprint, same body). One statement."""

    def definition(self, fingerprint: str) -> tuple[str, str] | None:
        """(kind, body) stored under `fingerprint`, or None: the kind chooses the driver.
        One statement, a read."""

    def request_result(self, request: str) -> str | None:
        """The JSON result committed under request id `request`, or None. One statement, a
        read: a transaction retried after a lost commit acknowledgement asks it first."""

    def record_request(self, request: str, result: str) -> None:
        """Record what the request committed, in the request's own (the caller's)
        transaction. One statement; the primary key makes a second record of one request
        fail (and roll the transaction back)."""

    def prune_requests(self, older_than: float) -> int:
        """Forget requests older than `older_than` seconds. One statement."""
