"""Gates, sleeps and escalations: steps that wait for a time or a person.

A wait ends from the status it was read in, so a timer, an approval and an operator's answer
racing for one step act once."""

from __future__ import annotations

from typing import Any, Protocol

from ..records import HeldStep


class WaitVerbs(Protocol):
    def make_waiting(self, run_id: str, name: str, due: float | None) -> int | None:
        """A gate, sleep or event wait waits until `due` (None: until someone acts); its
        step id, None when it was not pending. One statement, fenced by `pending`."""

    def due_waits(self, limit: int) -> list[tuple[int, str, str, str, str]]:
        """(id, run, name, kind, status) of waiting or escalated steps whose time has come.
        One statement that locks what it returns (skip locked: a write transaction on
        PostgreSQL); `end_wait`/`retry_now` fence each."""

    def end_wait(self, step_id: int, was: str, status: str, output: str | None,
                 error: str | None) -> HeldStep | None:
        """End a step that was in status `was`; None if it no longer is. One statement,
        fenced by `was`: a timer, an approval and an operator's answer each act once."""

    def step_named(self, run_id: str, name: str) -> dict[str, Any] | None:
        """A step by name, its row locked. One statement; the lock lasts to the end of the
        caller's transaction (PostgreSQL), so what it read stays true there."""

    def escalate(self, step_id: int, error: str, timeout: float | None) -> None:
        """The step waits for an operator (acted on after `timeout`, None: never), the
        lease cleared. One statement, fenced by `running` (after `end_attempt` returned
        it)."""

    def attention(self, run_id: str) -> None:
        """An open run is `needs_attention` while any step is, `running` again once none
        is. One statement, fenced by the run being open."""

    def retry_now(self, step_id: int, was: str, max_attempts: int) -> bool:
        """An operator's retry: ready now with budget `max_attempts`; False if the step is
        no longer `was`. One statement, fenced by `was`."""

    def escalate_wait(self, step_id: int) -> bool:
        """A gate nobody answered in time waits for an operator; False if it is no longer
        waiting. One statement, fenced by `waiting`."""

    def failed_attempts(self, step_id: int) -> int:
        """Attempts of a step that failed, timed out or missed heartbeats. One statement."""

    def record_decision(self, step_id: int, outcome: str, by: str | None,
                        detail: str | None) -> None:
        """A person's (or a timer's) decision joins the step's history, numbered -1, -2, ...
        One statement; two at once on one step collide on the key and the second
        transaction is refused (the caller fences with `end_wait`/`retry_now` first)."""
