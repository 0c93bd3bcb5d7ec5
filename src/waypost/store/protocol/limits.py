"""Rate and concurrency limits: one decision per limit at a time, under its row lock.

A grant holds a slot only while its step runs under the grant's lease token, so an attempt
that ends in any way frees its slot with nothing to repair."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..records import LimitRow, LimitUsage


class LimitVerbs(Protocol):
    def put_limits(self, limits: Sequence[LimitRow]) -> None:
        """Create or redefine limits. One statement per limit."""

    def get_limits(self, names: Sequence[str]) -> list[LimitRow]:
        """The named limits that exist, by name. One statement, a read."""

    def ready_among(self, groups: Sequence[Sequence[str]]) -> list[bool]:
        """For each group of tasks, whether one of its steps is claimable now. One
        statement, a read (a hint: the claim that follows is the check)."""

    def lock_limits(self, names: Sequence[str]) -> list[LimitRow]:
        """Lock the named limits in name order (never a cycle between claimers) until the
        caller's transaction ends, and return them (none named: none, no statement). One
        statement; the lock is what makes
        `limit_usage` then `add_grants` one decision per limit at a time."""

    def limit_usage(self, name: str, window: float | None, rate_count: int | None,
                    concurrency: bool) -> LimitUsage:
        """Grants in the rate window, slots held, and the window's n-th newest grant. One
        statement, a read; true only under `lock_limits` in the caller's transaction."""

    def add_grants(self, grants: Sequence[tuple[str, int, str]]) -> None:
        """Record (limit, step id, lease token) grants at this statement's time. One
        statement; a grant holds a slot only while its step runs under that token."""

    def prune_grants(self, margin: float) -> int:
        """Forget grants out of their rate window (plus `margin`) that hold no slot;
        returns how many. One statement."""

    def limits_in_use(self, margin: float,
                      names: Sequence[str] | None = None) -> list[tuple[LimitRow, int, int]]:
        """Every limit (or the named ones) with its grants in the window and its slots in
        use. One statement, a read."""
