"""Event chains: topics, subscriptions, replays and keyed lanes.

The topic gate orders subscriptions against emits: an event is either seen by a new
subscription or older than it, never lost between the two."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..records import SubscriptionRow, TopicEvent


class TopicVerbs(Protocol):
    def subscriptions(self, gate: bool = True) -> list[SubscriptionRow]:
        """Every subscription, read under the topic gate's shared lock (PostgreSQL `FOR
        SHARE`; `gate=False` for a read-only look): whoever adds a subscription takes the
        gate exclusively, so an event stored in this transaction is either seen by that
        subscription or older than it. One statement."""

    def put_subscription(self, name: str, pattern: str, fingerprint: str) -> bool:
        """Add a subscription that takes events stored after this transaction (its
        `since_seq` is the newest seq), or change an existing one's pattern and definition,
        keeping its position; returns whether anything changed. Takes the gate
        exclusively, only when something changes. Needs the caller's transaction."""

    def replay_subscription(self, name: str, since: float) -> int | None:
        """Have the sweeper deliver to `name`, in order, the events stored from `since` it
        has not had (and none at emit time until it caught up). Returns how many events lie
        after the replay's start, None for no such subscription. Takes the gate
        exclusively; needs the caller's transaction."""

    def close_topic_gate(self) -> None:
        """Take the topic gate exclusively: no event is stored (and no subscription read
        for one) until this transaction ends. One statement, a lock."""

    def advance_replay(self, name: str, after: int, caught_up: bool) -> None:
        """A replay delivered the events up to seq `after`; `caught_up`: none is left, so
        the subscription is delivered at emit time again (the caller holds the gate, so no
        emit ran between its last read and this). Fenced by the replay being on."""

    def add_topic_event(self, event_id: str, topic: str, key: str | None, payload: str,
                        correlation_id: str, cause_run: str | None,
                        cause_step: str | None) -> tuple[int, float] | None:
        """Store an event; its (seq, created_at), or None when an event with this id exists
        (emitting twice stores one). One statement: the unique id is the check."""

    def topic_event(self, event_id: str | None = None,
                    seq: int | None = None) -> TopicEvent | None:
        """One stored event, by its id or its seq. One statement, a read."""

    def topic_events_after(self, seq: int, limit: int) -> list[TopicEvent]:
        """At most `limit` events stored after `seq`, in seq order. One statement, a read."""

    def correlated_events(self, correlation_id: str, limit: int) -> list[TopicEvent]:
        """The events of a correlation id, oldest first. One statement, a read."""

    def run_correlation(self, run_id: str) -> str | None:
        """The correlation id of a run (the one it inherited, else its own id); None for no
        such run. One statement, a read."""

    def correlated_runs(self, correlation_id: str, limit: int) -> list[dict[str, Any]]:
        """Runs of a correlation id, the run whose id it is included, oldest first, with
        their triggering event's seq and parent. One statement, a read."""

    def enter_lane(self, subscription: str, key: str) -> tuple[int, int]:
        """A keyed delivery joins its lane: (its position, open deliveries of the lane with
        it); 1 open means it starts now. One statement, which locks the lane's row, so
        deliveries of one key join one at a time."""

    def queue_in_lane(self, subscription: str, key: str, position: int, event_seq: int,
                      run_id: str) -> None:
        """A delivery waits in its lane at `position`; its run, `run_id`, starts when the
        deliveries before it have ended. One statement."""

    def leave_lane(self, run_id: str) -> tuple[str, int, str] | None:
        """A keyed delivery's run ended: it leaves its lane, once (fenced by the run still
        holding it), and the lane's next queued delivery is taken off the queue, returned
        as (subscription, event seq, run id) for the caller to start. Needs the caller's
        transaction."""

    def queued_deliveries(self, event_seqs: Sequence[int]) -> list[dict[str, Any]]:
        """Deliveries of these events waiting in a lane (subscription, key, position, event
        seq, run id). One statement, a read."""

    def known_deliveries(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these delivery run ids exist, as runs or queued in a lane (a replay
        delivers the others). One statement, a read."""
