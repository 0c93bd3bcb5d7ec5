"""State machines: a machine run's state, its numbered transitions and the signals sent to it.

The transition number is the fence: a writer that decided from a stale state cannot move the
machine, and a signal is taken at most once."""

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

    def add_signal(self, run_id: str, name: str, event_id: str | None,
                  payload: str) -> tuple[int, bool]:
        """Store a signal sent to a run, pending: (its seq, True). With an `event_id` the
        run has already, (the stored signal's seq, False): one signal, however often sent.
        At most two statements."""

    def open_signals(self, run_id: str) -> list[tuple[int, str, str | None, str, str]]:
        """(seq, name, event id, payload, status) of a run's pending and deferred signals,
        oldest first. One statement, a read."""

    def settle_signal(self, seq: int, status: str, state: str | None) -> bool:
        """Mark an open signal `consumed` (taken by `state`), `ignored`, `unhandled` or
        `deferred`; fenced by its being open, so a signal is taken at most once. One
        statement."""

    def signals_of(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """A run's signals, oldest first. One statement, a read."""

    def signal(self, run_id: str, seq: int | None, event_id: str | None) -> dict[str, Any] | None:
        """One signal of a run (as `signals_of` gives it), by its seq, or else by the
        sender's event id. One statement, a read."""

    def runs_with_pending_signals(self, fingerprints: Sequence[str], limit: int) -> list[str]:
        """Unfinished runs of the definitions `fingerprints` with pending signals (not
        deferred). One statement, a read."""
