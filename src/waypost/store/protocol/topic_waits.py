"""Steps and machine runs waiting for a topic's events.

The topic's lock orders a wait against an emit: the event is either found by the wait or
finds it, never missed between the two."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..records import TopicEvent


class TopicWaitVerbs(Protocol):
    def lock_topic(self, topic: str) -> None:
        """Hold off emits of `topic` from looking for waits until this transaction ends
        (PostgreSQL: the topic's advisory lock, exclusively; SQLite's writer lock already
        does). Taken before a wait looks for stored events, so an event is either found
        by the wait or finds it."""

    def wait_shapes(self, topic: str) -> list[str]:
        """The field lists something waits on for events of `topic` (PostgreSQL: sharing
        the topic's advisory lock until the transaction ends). One statement, a read."""

    def add_topic_wait(self, topic: str, fields: str, digest: str, run_id: str,
                       step_id: int | None) -> None:
        """A step waits for an event of `topic` whose `fields` hold values with `digest`
        (again, for a step that waits anew); with `step_id` None a machine run does, once
        per topic (this replaces what it waited on). Needs the caller's transaction."""

    def topic_waiters(self, topic: str, fields: str,
                      digest: str) -> list[tuple[str, int | None]]:
        """(run id, step id, None for a machine run) of what waits for such an event,
        oldest first. One statement, a read."""

    def drop_topic_waits(self, step_ids: Sequence[int]) -> None:
        """These steps wait for no event any more. One statement per step."""

    def topic_events_since_run(self, topic: str, run_id: str, after_seq: int,
                               limit: int) -> list[TopicEvent]:
        """At most `limit` events of `topic` stored since run `run_id` was created and after
        `after_seq`, in order. One statement, a read."""
