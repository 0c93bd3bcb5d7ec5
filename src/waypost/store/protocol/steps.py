"""A run's steps and the DAG's bookkeeping: dependencies, inputs, maps, blocking, history.

A step that no worker runs is moved only from `pending` (or the status the caller read under
the run's lock), so the DAG's bookkeeping cannot undo a worker's outcome."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..records import NewStep, StepRow


class StepVerbs(Protocol):
    def insert_steps(self, run_id: str, steps: Sequence[NewStep], keys: Sequence[str]) -> None:
        """Insert a run's steps, each with its idempotency key. One statement per step:
        needs the caller's transaction (with the run they belong to)."""

    def release(self, run_id: str, names: Sequence[str]) -> list[str]:
        """One dependency of each named pending step is done; returns those now waiting on
        nothing, in the order named. One statement, fenced by `pending`."""

    def outputs(self, run_id: str, names: Sequence[str]) -> dict[str, str]:
        """The stored output of each named step. One statement, a read."""

    def make_ready(self, run_id: str, name: str, input: str, checksum: str) -> None:
        """Give a step its rendered input and make it ready now. One statement, fenced by
        `pending`."""

    def start_map(self, run_id: str, name: str, children: int) -> None:
        """A map step runs while its `children` items are open. One statement, fenced by
        `pending`."""

    def item_done(self, run_id: str, node: str, count: int = 1) -> int | None:
        """`count` items of a running map ended; returns how many are still open, None
        when the map is not running (nothing changed). One statement, fenced by the map
        being running."""

    def map_items(self, run_id: str, node: str) -> list[tuple[str, str | None, str | None]]:
        """(status, output, error) of a map's items in index order. One statement, a read."""

    def end_node(self, run_id: str, name: str, status: str, output: str | None,
                 error: str | None) -> None:
        """End a step that no worker runs (a map, a branch, a machine's waiting visit) with
        `status`. One statement, fenced by `pending`, `running` or `waiting`: an ended step
        is never overwritten."""

    def block(self, run_id: str, names: Sequence[str]) -> int:
        """Pending steps that can never start (something they need failed) end as
        `upstream_failed`; returns how many. One statement, fenced by `pending`."""

    def first_failure(self, run_id: str) -> tuple[str, str | None] | None:
        """(name, error) of the run's first failed step, undo steps aside. One statement,
        a read."""

    def steps_of(self, run_id: str) -> list[StepRow]:
        """Every step of a run (STEP_COLUMNS plus `suspicious`: missed two heartbeats by
        the database's clock), in creation order. One statement, a read."""

    def attempts_of(self, run_id: str) -> list[dict[str, Any]]:
        """The history of every step of a run. One statement, a read."""

    def reset_step(self, step_id: int, was: str, status: str, waiting_on: int,
                   max_attempts: int) -> bool:
        """Put a step back for resume or replay: output, error and end cleared; False if
        it is no longer `was`. One statement, fenced by `was` (the status the caller read
        under the run's lock): a step a worker completed meanwhile is never set back."""

    def attempts_of_step(self, step_id: int) -> list[dict[str, Any]]:
        """One step's history by attempt number. One statement, a read."""
