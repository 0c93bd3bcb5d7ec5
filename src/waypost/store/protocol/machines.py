"""State machines: a machine run's state, its numbered transitions and the events sent to it.

The transition number is the fence: a writer that decided from a stale state cannot move the
machine, and an event is taken at most once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class MachineVerbs(Protocol):
    def machine(self, run_id: str) -> tuple[str | None, str | None, int]:
        """A machine run's (state, data JSON, transitions so far), read under the run's row
        lock (PostgreSQL `FOR UPDATE`) so the next transition is decided from the latest
        state. (None, None, 0) before the first transition or for an unknown run. One
        statement."""

    def transition(self, run_id: str, seq: int, from_state: str | None, to_state: str,
                   trigger: str, event_id: str | None, data_before: str | None,
                   data_after: str) -> None:
        """Move the machine to `to_state` with `data_after` as its transition number `seq`
        and keep the transition in its history, stamped with the database's clock. Fenced
        by the run being at transition `seq - 1` (it raises otherwise: a lost race, which
        the row lock of `machine` rules out). One statement on PostgreSQL, two on
        SQLite."""

    def transitions(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """A run's first `limit` transitions, oldest first. One statement, a read."""

    def add_event(self, run_id: str, name: str, event_id: str | None,
                  payload: str) -> tuple[int, bool]:
        """Store an event sent to a run, pending: (its seq, True). With an `event_id` the
        run has already, (the stored event's seq, False): one event, however often sent.
        At most two statements."""

    def open_events(self, run_id: str) -> list[tuple[int, str, str | None, str, str]]:
        """(seq, name, event id, payload, status) of a run's pending and deferred events,
        oldest first. One statement, a read."""

    def settle_event(self, seq: int, status: str, state: str | None) -> bool:
        """Mark an open event `consumed` (taken by `state`), `ignored`, `unhandled` or
        `deferred`; fenced by its being open, so an event is taken at most once. One
        statement."""

    def events_of(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """A run's events, oldest first. One statement, a read."""

    def event(self, run_id: str, seq: int | None, event_id: str | None) -> dict[str, Any] | None:
        """One event of a run (as `events_of` gives it), by its seq, or else by the
        sender's event id. One statement, a read."""

    def runs_with_pending_events(self, fingerprints: Sequence[str], limit: int) -> list[str]:
        """Unfinished runs of the definitions `fingerprints` with pending events (not
        deferred). One statement, a read."""
