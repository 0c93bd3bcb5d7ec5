"""Claims, leases and outcomes: an attempt's outcome counts only under its lease token.

Each claim draws a fresh token per step, so a worker whose lease ran out or was taken over
matches no row: at most one outcome per attempt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..records import ClaimedStep, Expired, HeldStep


class ClaimVerbs(Protocol):
    def claimed_with(self, owner: str, batch: str) -> list[ClaimedStep]:
        """Steps still running for `owner` under claim `batch`: a transaction retried after
        its commit applied finds its own claims. One statement, a read."""

    def claim(self, owner: str, batch: str, limit: int, lease: float, tasks: Sequence[str],
              external: Sequence[str] = (), alone: bool = False) -> list[ClaimedStep]:
        """Take up to `limit` ready steps of `tasks` whose time has come, oldest first,
        leasing them to `owner` for `lease` seconds and counting an attempt. Each gets its
        own unguessable lease token (`batch` and a random part the database draws per
        row); steps of the `external` tasks also get a random completion token. A step in
        quarantine is taken only `alone`, and then by itself. One statement (two when a
        quarantined step came with others, given back in the same transaction), fenced by
        `ready`; skip locked on PostgreSQL, so two workers never take one step and never
        wait on each other."""

    def next_ready_at(self, tasks: Sequence[str]) -> float | None:
        """When the earliest ready step of `tasks` becomes claimable. One statement, a read."""

    def succeed_many(self, done: Sequence[tuple[int, str, str]]) -> list[HeldStep | None]:
        """`succeed` for each (step id, lease token, output), in order. One statement per
        outcome (one round trip on PostgreSQL); each is fenced on its own."""

    def succeed(self, step_id: int, token: str, output: str) -> HeldStep | None:
        """Record a successful attempt; None if `token` no longer holds the step. One
        statement, fenced by `running`, the lease token, a live lease and the timeout not
        passed: an attempt records at most one outcome."""

    def expire_queued(self, error: str, limit: int) -> list[HeldStep]:
        """Fail ready steps that waited longer than their queue timeout. One statement,
        fenced by `ready` (a step claimed meanwhile is untouched); skip locked."""

    def hand_off(self, step_id: int, token: str, completion_token: str) -> bool:
        """The task handed its work to another system: the step stays running without a
        lease until `completion_token` is used. One statement, fenced by `running`, the
        lease token and a live lease."""

    def complete_external(self, step_id: int, completion_token: str,
                          output: str) -> HeldStep | None:
        """Another system completed a handed-off step; None if the token does not match
        (or was used). One statement, fenced by `running` and the completion token (or,
        before the hand-off is recorded, the lease token it embeds)."""

    def fail_external(self, step_id: int, completion_token: str,
                      error: str) -> HeldStep | None:
        """Another system failed a handed-off step: its attempt is recorded as failed and
        the step returned (still running) for the caller to retry or fail. Two statements:
        needs the caller's transaction; fenced like `complete_external`, the row locked."""

    def end_attempt(self, step_id: int, token: str, outcome: str, error: str,
                    expired: bool) -> HeldStep | None:
        """Record a failed or lost attempt in the step's history if `token` holds the step
        (a live lease for a worker's report, an expired one for the sweeper's); None
        otherwise. The step stays running: the caller follows with `retry_later`, `fail`
        or `escalate`. Two statements: needs the caller's transaction; the row locked."""

    def retry_later(self, step_id: int, delay: float, error: str,
                    extra_attempt: bool = False) -> None:
        """Back to ready after `delay` seconds, the lease cleared; `extra_attempt` adds one
        to the budget (not the task's fault). One statement, fenced by `running` (called
        after `end_attempt` or another token-fenced verb returned this step)."""

    def lost_attempts(self, step_id: int) -> int:
        """A write: record that the step's attempt was lost with its worker, and return
        how many of its attempts were lost while running alone (this one included); a loss
        beside other attempts counts nothing and puts the step in quarantine. One
        statement, unfenced: call it once, after `end_attempt` returned the lost attempt."""

    def fail(self, step_id: int, error: str) -> None:
        """The step failed for good, the lease cleared. One statement, fenced by `running`
        (called after a token-fenced verb returned this step)."""

    def renew(self, owner: str, tokens: Sequence[str], lease: float) -> set[tuple[int, str]]:
        """Extend the live leases `owner` runs under `tokens` by `lease` seconds; returns
        their (step id, lease token). One statement per 500 tokens, fenced by `running`, a
        live lease and the token: a lease that ran out is never revived, and one an
        earlier incarnation under the same name held is not renewed."""

    def beat(self, step_id: int, token: str, details: str) -> None:
        """A task's heartbeat with its details. One statement, fenced by `running`, the
        lease token and a live lease."""

    def expired(self, limit: int) -> list[Expired]:
        """Running leased steps whose lease, timeout or heartbeats ran out, with why. One
        statement, a read: the caller ends each with `end_attempt(expired=True)`, which
        fences a step renewed or finished meanwhile."""

    def release_held(self, owner: str, tokens: Sequence[str], reason: str) -> int:
        """A stopping worker gives back what it runs under `tokens`: ready again at once,
        each attempt kept in the history as `released` with `reason`, one more attempt
        allowed. Needs the caller's transaction (history, then the steps); fenced by
        `owner`, the tokens and `running`."""
