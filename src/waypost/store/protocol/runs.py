"""Runs: creation under an idempotency key, the count of open steps, ends and listings.

A run's status only moves forward: every write that ends one names the statuses it may end
from, so a late writer finds the run ended and changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..records import RunRow


class RunVerbs(Protocol):
    def insert_run(self, run_id: str, definition: str, fingerprint: str, key: str | None,
                   input: str, checksum: str, open_steps: int,
                   correlation: str | None = None, trigger: int | None = None,
                   lane: str | None = None) -> bool:
        """Create a pending run; False (nothing written) when the id or the idempotency key
        exists. One statement: the unique constraints are the check, so two concurrent
        starts with one key create one run. A run started by an event carries the event's
        `correlation` id, the event's seq (`trigger`) and, for a keyed delivery, the key of
        the `lane` it holds until it ends."""

    def run_id_by_key(self, key: str) -> str | None:
        """The id of the run started under idempotency key `key`, if any. One statement,
        a read."""

    def run_by_key(self, key: str) -> tuple[str, str, str]:
        """(id, definition, input checksum) of the run holding idempotency key `key`, which must
        exist (call it after `insert_run` returned False). One statement, a read."""

    def lock_run(self, run_id: str) -> RunRow | None:
        """A run's row, locked to the end of the transaction (PostgreSQL `FOR UPDATE`):
        resume, replay, cancel and operators' answers take it first, so two of them on one
        run happen one after the other, the second seeing what the first committed. Besides
        `get_run`'s fields, a machine's `state`, `data` and `transitions` (as `machine`
        reads them). One statement."""

    def link_child(self, child: str, parent: str, step: str) -> None:
        """Record that run `child` was started by `step` of run `parent`; the child inherits
        the parent's correlation id. One statement."""

    def parent_of(self, run_id: str) -> tuple[str, str] | None:
        """(parent run, step) of a child run; None for a run nobody started. One
        statement, a read."""

    def children_of(self, run_id: str) -> list[dict[str, Any]]:
        """The runs a run's steps started (id, definition, status, step), oldest first. One
        statement, a read."""

    def run_head(self, run_id: str) -> tuple[str, str, str | None, str | None] | None:
        """(fingerprint, input, parent run, lane key) of a run, or None. One statement, a
        read."""

    def add_open(self, run_id: str, delta: int) -> int:
        """Add `delta` to the run's count of open steps and return the new count. One
        statement; unfenced (the caller holds the step whose outcome changed the count)."""

    def finish_run(self, run_id: str, status: str, output: str | None,
                   error: str | None) -> None:
        """End a run with `status`. One statement, fenced by the run being open or
        compensating: an ended run is never overwritten."""

    def mark_runs_running(self, run_ids: Sequence[str]) -> None:
        """pending -> running (first claim of a run). One statement, fenced by `pending`."""

    def reopen_run(self, run_id: str, open_steps: int) -> None:
        """A resumed run runs again: error, output, end and deadline cleared. One
        statement; unfenced: the caller locked and checked the run first."""

    def set_deadline(self, run_id: str, seconds: float) -> None:
        """The run ends `seconds` after its creation if still open. One statement."""

    def overdue_runs(self, limit: int) -> list[str]:
        """Open runs whose deadline passed, oldest deadline first. One statement, a read:
        the caller ends each with `end_run`, which fences a run that ended meanwhile."""

    def cancel_steps(self, run_id: str, error: str) -> int:
        """End every unfinished step of a run as cancelled, recording running attempts as
        `cancelled` in their history; returns how many steps ended. Two statements: needs
        the caller's transaction. Fenced by status (ended steps are untouched); the
        cancelled attempts' workers find out at their next renewal, their late outcomes
        match nothing (their lease token is cleared)."""

    def end_run(self, run_id: str, status: str, error: str) -> bool:
        """End an open run early (cancel, deadline); False if it had already ended. One
        statement, fenced by the run being open."""

    def get_run(self, run_id: str) -> RunRow | None:
        """A run's row (RUN_COLUMNS), or None. One statement, a read."""

    def run_ids_like(self, prefix: str) -> list[str]:
        """Up to two run ids starting with `prefix` (two: enough to call it ambiguous).
        One statement, a read."""

    def list_runs(self, status: str | None, definition: str | None, limit: int, *,
                  kind: str | None = None, key: str | None = None, since: float | None = None,
                  until: float | None = None, search: str | None = None,
                  before: tuple[float, str] | None = None) -> list[RunRow]:
        """Newest runs first, optionally of one status, one definition (a flow, machine or
        handler: its full name or the part after the module), one kind of definition, one
        key, created in [since, until), whose input's JSON text contains `search`, and after
        `before` (the created_at and id of the last run of the page before: keyset paging).
        One statement, a read."""

    def step_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(succeeded, all, suspicious) steps of each run; a run without steps is absent.
        One statement, a read."""
