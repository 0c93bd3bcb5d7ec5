"""Event chains: events on topics, who subscribes to them, and the lanes that keep the
deliveries of one key in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..records import SubscriptionRow, TopicEvent
from .core import SqlCore, marks

_EVENT = "seq, id, topic, key, payload, correlation_id, cause_run, cause_step, created_at"
_SUBSCRIPTION = "s.name, s.pattern, s.fingerprint, s.since_seq, s.replay_seq"


def _event(row: Sequence[Any]) -> TopicEvent:
    return TopicEvent(int(row[0]), row[1], row[2], row[3], row[4], row[5], row[6], row[7],
                      float(row[8]))


def _subscription(row: Sequence[Any]) -> SubscriptionRow:
    return SubscriptionRow(row[0], row[1], row[2], int(row[3]),
                           None if row[4] is None else int(row[4]))


class TopicVerbs(SqlCore):
    # -- subscriptions -----------------------------------------------------------------------
    def subscriptions(self, gate: bool = True) -> list[SubscriptionRow]:
        """Every subscription, read under the topic gate's shared lock: a subscription being
        added (which takes the gate exclusively) waits for this transaction, or this one
        for it, so an event stored here is either seen by it or older than it.

        The gate is taken by a statement of its own, before the read. A statement that
        waited for a row lock re-checks only the row it locked (PostgreSQL, read
        committed): a read joined to the gate returned the subscriptions from before the
        wait, without the one that had just closed the gate, and an event stored here
        reached nobody. The next statement sees what committed during the wait."""
        if self.SHARE and gate:
            self.execute(f"SELECT id FROM topic_gate WHERE id = 1 {self.SHARE}")
        rows = self.execute(f"SELECT {_SUBSCRIPTION} FROM subscriptions s "
                            "ORDER BY s.name").fetchall()
        return [_subscription(r) for r in rows]

    def put_subscription(self, name: str, pattern: str, fingerprint: str) -> bool:
        """Add a subscription, taking events stored after this transaction's (its
        `since_seq` is the newest event's seq), or change an existing one's pattern and
        definition, keeping its position. Takes the topic gate exclusively (see
        `subscriptions`). Returns whether anything changed."""
        known = self.execute("SELECT pattern, fingerprint FROM subscriptions WHERE name = ?",
                             (name,)).fetchone()
        if known is not None and tuple(known) == (pattern, fingerprint):
            return False  # a worker restarted with the same code: no need for the gate
        self.close_topic_gate()
        row = self.execute("INSERT INTO subscriptions (name, pattern, fingerprint, since_seq, "
                           "created_at, updated_at) SELECT ?, ?, ?, COALESCE(MAX(seq), 0), "
                           "{now}, {now} FROM topic_events WHERE 1 = 1 ON CONFLICT (name) "
                           "DO UPDATE SET pattern = excluded.pattern, "
                           "fingerprint = excluded.fingerprint, updated_at = "
                           "excluded.updated_at WHERE subscriptions.pattern <> "
                           "excluded.pattern OR subscriptions.fingerprint <> "
                           "excluded.fingerprint RETURNING name",
                           (name, pattern, fingerprint)).fetchone()
        return row is not None

    def replay_subscription(self, name: str, since: float) -> int | None:
        """Deliver to a subscription, in order, the events stored from `since` (the
        database's seconds) that it has not had: its replay starts before the first of
        them. Returns how many events of any topic lie after that point, None for no such
        subscription."""
        self.close_topic_gate()
        row = self.execute("UPDATE subscriptions SET replay_seq = (SELECT COALESCE(MIN(seq), "
                           "(SELECT COALESCE(MAX(seq), 0) + 1 FROM topic_events)) - 1 FROM "
                           "topic_events WHERE created_at >= ?), updated_at = {now} WHERE "
                           "name = ? RETURNING replay_seq", (since, name)).fetchone()
        if row is None:
            return None
        count = self.execute("SELECT COUNT(*) FROM topic_events WHERE seq > ?",
                             (int(row[0]),)).fetchone()
        return int(count[0])

    def close_topic_gate(self) -> None:
        """Take the topic gate exclusively: no event is stored until this transaction ends."""
        self.execute("UPDATE topic_gate SET version = version + 1 WHERE id = 1")

    def advance_replay(self, name: str, after: int, caught_up: bool) -> None:
        """A replay delivered everything up to seq `after`; `caught_up`: nothing is left, so
        events go back to being delivered when they are stored."""
        self.execute("UPDATE subscriptions SET replay_seq = ?, updated_at = {now} WHERE "
                     "name = ? AND replay_seq IS NOT NULL",
                     (None if caught_up else after, name))

    # -- events --------------------------------------------------------------------------------
    def add_topic_event(self, event_id: str, topic: str, key: str | None, payload: str,
                        correlation_id: str, cause_run: str | None,
                        cause_step: str | None) -> tuple[int, float] | None:
        """Store an event: its (seq, created_at), or None when an event with this id is
        stored already (emitting twice stores one event). One statement."""
        row = self.execute("INSERT INTO topic_events (id, topic, key, payload, correlation_id, "
                           "cause_run, cause_step, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
                           "{now}) ON CONFLICT (id) DO NOTHING RETURNING seq, created_at",
                           (event_id, topic, key, payload, correlation_id, cause_run,
                            cause_step)).fetchone()
        return None if row is None else (int(row[0]), float(row[1]))

    def topic_event(self, event_id: str | None = None,
                    seq: int | None = None) -> TopicEvent | None:
        """One event, by its id or its seq."""
        by, value = ("id", event_id) if seq is None else ("seq", seq)
        row = self.execute(f"SELECT {_EVENT} FROM topic_events WHERE {by} = ?",
                           (value,)).fetchone()
        return None if row is None else _event(row)

    def topic_events_after(self, seq: int, limit: int) -> list[TopicEvent]:
        """Events stored after `seq`, in order (a replay's next batch)."""
        rows = self.execute(f"SELECT {_EVENT} FROM topic_events WHERE seq > ? ORDER BY seq "
                            f"LIMIT ?", (seq, limit)).fetchall()
        return [_event(r) for r in rows]

    def correlated_events(self, correlation_id: str, limit: int) -> list[TopicEvent]:
        """The events of one correlation id, oldest first."""
        rows = self.execute(f"SELECT {_EVENT} FROM topic_events WHERE correlation_id = ? "
                            f"ORDER BY seq LIMIT ?", (correlation_id, limit)).fetchall()
        return [_event(r) for r in rows]

    def run_correlation(self, run_id: str) -> str | None:
        """The correlation id a run's events inherit: the one it inherited, or its own id
        (None: no such run)."""
        row = self.execute("SELECT COALESCE(correlation_id, id) FROM runs WHERE id = ?",
                           (run_id,)).fetchone()
        return None if row is None else str(row[0])

    def correlated_runs(self, correlation_id: str, limit: int) -> list[dict[str, Any]]:
        """Runs of one correlation id (the run whose id it is included), oldest first, with
        the event that started each and the run whose step started it."""
        rows = self.execute("SELECT id, definition, status, created_at, started_at, finished_at, "
                            "error, trigger_event, parent_run, parent_step FROM runs WHERE "
                            "correlation_id = ? OR id = ? ORDER BY created_at, id LIMIT ?",
                            (correlation_id, correlation_id, limit)).fetchall()
        keys = ("id", "definition", "status", "created_at", "started_at", "finished_at", "error",
                "trigger_event", "parent_run", "parent_step")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- lanes: one key's deliveries in order ----------------------------------------------
    def enter_lane(self, subscription: str, key: str) -> tuple[int, int]:
        """A delivery joins the lane of (subscription, key): its position, and how many of
        the lane's deliveries are open with it (1: it may start now). One statement, which
        locks the lane's row: deliveries of one key join one at a time."""
        row = self.execute("INSERT INTO delivery_lanes (subscription, key, tail, open) VALUES "
                           "(?, ?, 1, 1) ON CONFLICT (subscription, key) DO UPDATE SET "
                           "tail = delivery_lanes.tail + 1, open = delivery_lanes.open + 1 "
                           "RETURNING tail, open", (subscription, key)).fetchone()
        return int(row[0]), int(row[1])

    def queue_in_lane(self, subscription: str, key: str, position: int, event_seq: int,
                      run_id: str) -> None:
        """A delivery waits in its lane for the ones before it (its run starts later, with
        this id)."""
        self.execute("INSERT INTO lane_queue (subscription, key, position, event_seq, run_id) "
                     "VALUES (?, ?, ?, ?, ?)", (subscription, key, position, event_seq, run_id))

    def leave_lane(self, run_id: str) -> tuple[str, int, str] | None:
        """A keyed delivery's run ended: it leaves its lane (fenced: a run leaves once, so a
        replayed dead letter's second end leaves nothing), and the next delivery queued in
        the lane, if any, is taken from the queue: its (subscription, event seq, run id).
        Needs the caller's transaction."""
        row = self.execute("SELECT definition, lane FROM runs WHERE id = ? AND lane IS NOT NULL",
                           (run_id,)).fetchone()
        if row is None:
            return None
        subscription, key = row[0], row[1]
        if self.execute("UPDATE runs SET lane = NULL WHERE id = ? AND lane = ?",
                        (run_id, key)).rowcount != 1:
            return None
        left = self.execute("UPDATE delivery_lanes SET open = open - 1 WHERE subscription = ? "
                            "AND key = ? RETURNING open", (subscription, key)).fetchone()
        if left is None or int(left[0]) <= 0:
            return None
        nxt = self.execute("DELETE FROM lane_queue WHERE subscription = ? AND key = ? AND "
                           "position = (SELECT MIN(position) FROM lane_queue WHERE "
                           "subscription = ? AND key = ?) RETURNING event_seq, run_id",
                           (subscription, key, subscription, key)).fetchone()
        return None if nxt is None else (str(subscription), int(nxt[0]), str(nxt[1]))

    def queued_deliveries(self, event_seqs: Sequence[int]) -> list[dict[str, Any]]:
        """Deliveries of these events still waiting in their lanes."""
        if not event_seqs:
            return []
        rows = self.execute(f"SELECT subscription, key, position, event_seq, run_id FROM "
                            f"lane_queue WHERE event_seq IN ({marks(len(event_seqs))}) "
                            f"ORDER BY position", list(event_seqs)).fetchall()
        keys = ("subscription", "key", "position", "event_seq", "run_id")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def known_deliveries(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these delivery run ids exist, as runs or waiting in a lane."""
        if not run_ids:
            return set()
        m = marks(len(run_ids))
        rows = self.execute(f"SELECT id FROM runs WHERE id IN ({m}) UNION SELECT run_id FROM "
                            f"lane_queue WHERE run_id IN ({m})", [*run_ids, *run_ids]).fetchall()
        return {str(r[0]) for r in rows}
