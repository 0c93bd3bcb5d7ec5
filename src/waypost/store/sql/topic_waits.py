"""Waiting for events: a flow's `wp.wait_for` steps and machine runs taking a topic's
events, found by an emit through an index on (topic, fields, digest of their values)."""

from __future__ import annotations

from collections.abc import Sequence

from ..records import TopicEvent
from .core import SqlCore
from .topics import _EVENT, _event


class TopicWaitVerbs(SqlCore):
    def lock_topic(self, topic: str) -> None:
        """Serialise with emits of `topic` until this transaction ends (SQLite's writer lock
        already does: nothing to do)."""

    def wait_shapes(self, topic: str) -> list[str]:
        """The field lists something waits on for `topic`, read while holding off any
        `lock_topic` of it until this transaction ends."""
        rows = self.execute("SELECT fields FROM topic_wait_shapes WHERE topic = ?",
                            (topic,)).fetchall()
        return [str(r[0]) for r in rows]

    def add_topic_wait(self, topic: str, fields: str, digest: str, run_id: str,
                       step_id: int | None) -> None:
        """A step (or, with `step_id` None, a machine run, once per topic: this replaces
        what it waited on) waits for an event of `topic` whose `fields` digest to
        `digest`."""
        self.execute("INSERT INTO topic_wait_shapes (topic, fields) VALUES (?, ?) "
                     "ON CONFLICT (topic, fields) DO NOTHING", (topic, fields))
        if step_id is None:
            self.execute("DELETE FROM topic_waits WHERE run_id = ? AND topic = ? AND "
                         "step_id IS NULL", (run_id, topic))
            self.execute("INSERT INTO topic_waits (topic, fields, digest, run_id, step_id, "
                         "created_at) VALUES (?, ?, ?, ?, NULL, {now})",
                         (topic, fields, digest, run_id))
            return
        self.execute("INSERT INTO topic_waits (topic, fields, digest, run_id, step_id, "
                     "created_at) VALUES (?, ?, ?, ?, ?, {now}) ON CONFLICT (step_id) DO "
                     "UPDATE SET topic = excluded.topic, fields = excluded.fields, "
                     "digest = excluded.digest, created_at = excluded.created_at",
                     (topic, fields, digest, run_id, step_id))

    def topic_waiters(self, topic: str, fields: str,
                      digest: str) -> list[tuple[str, int | None]]:
        """(run id, step id or None for a machine run) of what waits for such an event."""
        rows = self.execute("SELECT run_id, step_id FROM topic_waits WHERE topic = ? AND "
                            "fields = ? AND digest = ? ORDER BY id",
                            (topic, fields, digest)).fetchall()
        return [(str(r[0]), None if r[1] is None else int(r[1])) for r in rows]

    def drop_topic_waits(self, step_ids: Sequence[int]) -> None:
        """Steps no longer wait (their event came, their time ran out, they ended)."""
        self.executemany("DELETE FROM topic_waits WHERE step_id = ?", [(s,) for s in step_ids])

    def topic_events_since_run(self, topic: str, run_id: str, after_seq: int,
                               limit: int) -> list[TopicEvent]:
        """Events of `topic` stored since run `run_id` was created, after `after_seq`, in
        order: what a wait that starts now may already have missed."""
        rows = self.execute(f"SELECT {_EVENT} FROM topic_events WHERE topic = ? AND seq > ? "
                            f"AND created_at >= (SELECT created_at FROM runs WHERE id = ?) "
                            f"ORDER BY seq LIMIT ?", (topic, after_seq, run_id, limit)
                            ).fetchall()
        return [_event(r) for r in rows]
