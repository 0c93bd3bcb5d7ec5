"""Waiting for an event: a flow's `wp.wait_for` step, and a machine run taking a topic's
events (its `topics`, matched on its data).

The event may come before the wait starts or after, and either way the wait gets it:
an emit looks for the waits its event satisfies (by topic, fields and digest) in the
transaction that stores it; a wait that starts looks for events of its topic stored since
its run was created. On PostgreSQL the two cannot miss each other: a starting wait takes
the topic's lock exclusively before it looks, an emit shares it when it looks (after
storing its event), so whichever commits second sees the other (`Tx.lock_topic`).

Only a flow's waits are used up: an event ends the step (fenced by `waiting`, so an
event and the timeout, or two events, end it once). A machine run keeps taking its
topics' events for as long as it is open; each arrives as a signal to the run, named by
its topic, stored once per event id and offered as every signal is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ... import codec
from ...moments import iso
from ...statuses import ACTIVE_RUNS
from ...store.records import TopicEvent
from ...vocabulary.match import MISSING, at_path, payload_digest, satisfies, shape
from ..seam import AwaitEvent
from .work import RunState, Work

#: Stored events a starting wait reads per statement.
SCAN_BATCH = 500


def output(event: TopicEvent) -> str:
    """A wait's output: the event that ended it."""
    try:
        payload = codec.loads(event.payload)
    except (ValueError, RecursionError):  # stored by `emitted`, so JSON; never trusted
        payload = None
    return codec.dumps({"event": event.id, "topic": event.topic, "key": event.key,
                        "payload": payload, "emitted_at": iso(event.created_at)})


def start(run: RunState, d: AwaitEvent) -> tuple[bool, str | None]:
    """A flow's wait starts: (False, its output) when an event stored already satisfies
    it, for the caller to end the step with; else left waiting for one, (True, None) (or
    (False, None): the step was not in a state to wait)."""
    w, tx = run.work, run.work.tx
    tx.lock_topic(d.topic)
    found = next(_stored(w, run.id, d.topic, d.match), None)
    if found is not None:
        return False, output(found)
    step_id = tx.make_waiting(run.id, d.step, d.due)
    if step_id is None:
        return False, None
    _add(w, d.topic, d.match, run.id, step_id)
    return True, None


def listen(run: RunState, before: str | None, after: str) -> None:
    """A machine's data changed from `before` to `after`: where that changes what its
    topics match, it waits for the new values, and takes the events that already match
    them (stored since the run was created). They are offered after this transition."""
    topics = run.driver.topics if run.driver is not None else None
    if not topics:
        return
    new, old = _wanted(topics, after), _wanted(topics, before)
    w = run.work
    for topic, match in new.items():
        if old.get(topic) == match:
            continue
        w.tx.lock_topic(topic)
        _add(w, topic, match, run.id, None)
        for event in _stored(w, run.id, topic, match):
            _take(w, run.id, event)


def arrived(w: Work, event: TopicEvent) -> None:
    """An event was stored: the waits it satisfies end (a flow's) or take it (a
    machine's)."""
    tx = w.tx
    shapes = w.wait_shapes.get(event.topic)
    if shapes is None:
        shapes = w.wait_shapes[event.topic] = tx.wait_shapes(event.topic)
    if not shapes:
        return
    try:
        payload = codec.loads(event.payload)
    except (ValueError, RecursionError):
        return
    text = output(event)
    ended = []
    for fields in shapes:
        digest = payload_digest(payload, fields)
        if digest is None:
            continue
        for run_id, step_id in tx.topic_waiters(event.topic, fields, digest):
            if step_id is None:
                if run_id not in w.ended:
                    row = tx.lock_run(run_id)  # a run's events are written under its lock
                    if row is not None and row["status"] in ACTIVE_RUNS:
                        _take(w, run_id, event)
                continue
            ended.append(step_id)
            held = tx.end_wait(step_id, "waiting", "succeeded", text, None)
            if held is not None:
                w.step_ended(held, text)
    if ended:
        tx.drop_topic_waits(ended)


def _wanted(topics: Mapping[str, Mapping[str, str]], data_text: str | None) -> dict[str, Any]:
    """The match per topic that a machine's data asks for; a topic whose data fields are
    not all there yet is not waited for."""
    try:
        data = codec.loads(data_text) if data_text else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        return {}
    wanted = {}
    for topic, fields in topics.items():
        match = {p: at_path(data, path) for p, path in fields.items()}
        if all(v is not MISSING for v in match.values()):
            wanted[topic] = match
    return wanted


def _add(w: Work, topic: str, match: dict[str, Any], run_id: str, step_id: int | None) -> None:
    fields, digest = shape(match)
    w.tx.add_topic_wait(topic, fields, digest, run_id, step_id)
    known = w.wait_shapes.get(topic)
    if known is not None and fields not in known:
        known.append(fields)


def _stored(w: Work, run_id: str, topic: str, match: dict[str, Any]) -> Any:
    """Events of `topic` stored since the run was created that satisfy `match`, in order."""
    after = 0
    while True:
        batch = w.tx.topic_events_since_run(topic, run_id, after, SCAN_BATCH)
        for event in batch:
            try:
                payload = codec.loads(event.payload)
            except (ValueError, RecursionError):
                continue
            if satisfies(payload, match):
                yield event
        if len(batch) < SCAN_BATCH:
            return
        after = batch[-1].seq


def _take(w: Work, run_id: str, event: TopicEvent) -> None:
    """A machine run takes a topic event as a signal of its own (once per event id),
    offered once this transaction's decisions are applied."""
    seq, new = w.tx.add_signal(run_id, event.topic, event.id, event.payload)
    if new:
        if run_id in w.open_signals:
            w.open_signals[run_id].append((seq, event.topic, event.id, event.payload, "pending"))
        w.offer.add(run_id)
