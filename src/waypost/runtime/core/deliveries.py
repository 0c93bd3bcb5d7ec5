"""Events on topics, in the transaction that emits them: stored, then delivered.

Publishing stores the event (once per id) and, in the same transaction, starts one
delivery per subscription whose pattern matches: a run of the subscription's definition
(a handler's, a triggered flow's or machine's) with the event's payload as its input. So
an event is never stored without its deliveries (nor without ending the waits it
satisfies: event_waits.py), and a delivery never exists without its event. A delivery's
run id is derived from the event's id and the subscription, so a retried transaction, a
replay and a live emit can never make two.

Order: deliveries of events with the same key to the same subscription run one at a time,
in the order they joined the key's lane (their emit order). A delivery whose lane is busy
waits in the lane's queue with no run yet; the end of the run ahead of it starts it, in
the transaction that recorded that end.

Correlation: an event emitted by a step inherits its run's correlation id (a run started
by an event has the event's, a child run its parent's, any other run its own id); an
event emitted from engine code starts a correlation of its own, its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ... import codec
from ...errors import InputError
from ...registry import registry
from ...store.protocol import Tx
from ...store.records import SubscriptionRow, TopicEvent
from ...vocabulary.topics import Emitted, matches
from . import event_waits
from .runs import create_run
from .work import Settles, Work

#: Events a replay delivers per sweep and subscription.
REPLAY_BATCH = 500


def delivery_id(event_id: str, created_at: float, subscription: str) -> str:
    """The run id of an event's delivery to a subscription: time-ordered like every run
    id (by the event's time), and the same however often it is computed."""
    digest = hashlib.sha256(f"{event_id}/{subscription}".encode()).hexdigest()[:12]
    return f"{int(created_at * 1000):012x}{digest}"


def publish(w: Work, events: Sequence[Emitted], cause_run: str | None = None,
            cause_step: str | None = None) -> list[dict[str, Any]]:
    """Store events and start their deliveries in `w`'s transaction. Returns, per event,
    its id, seq and whether it was a repeat of a stored one (which delivers nothing)."""
    tx = w.tx
    correlation = None
    if cause_run is not None:
        correlation = w.correlations.get(cause_run)
        if correlation is None:
            correlation = w.correlations[cause_run] = tx.run_correlation(cause_run) or cause_run
    results = []
    for e in events:
        stored = tx.add_topic_event(e.id, e.topic, e.key, e.payload, correlation or e.id,
                                    cause_run, cause_step)
        if stored is None:
            found = tx.topic_event(e.id)
            results.append({"id": e.id, "seq": found.seq if found else None,
                            "duplicate": True, "topic": e.topic})
            continue
        seq, at = stored
        event = TopicEvent(seq, e.id, e.topic, e.key, e.payload, correlation or e.id,
                           cause_run, cause_step, at)
        delivered = 0
        for sub in subscriptions(w):
            if sub.replay_seq is None and matches(sub.pattern, e.topic):
                deliver(w, sub, event)
                delivered += 1
        event_waits.arrived(w, event)
        results.append({"id": e.id, "seq": seq, "duplicate": False, "topic": e.topic,
                        "deliveries": delivered})
    return results


def subscriptions(w: Work) -> list[SubscriptionRow]:
    """Read once per transaction, under the topic gate (see `Tx.subscriptions`)."""
    if w.subscriptions is None:
        w.subscriptions = w.tx.subscriptions()
    return w.subscriptions


def deliver(w: Work, sub: SubscriptionRow, event: TopicEvent) -> None:
    """Start `event`'s delivery to `sub`, or queue it behind its key's lane."""
    run_id = delivery_id(event.id, event.created_at, sub.name)
    if event.key is not None:
        position, open_ = w.tx.enter_lane(sub.name, event.key)
        if open_ > 1:
            w.tx.queue_in_lane(sub.name, event.key, position, event.seq, run_id)
            return
    start(w, sub.fingerprint, sub.name, event, run_id)


def start(w: Work, fingerprint: str, name: str, event: TopicEvent,
          run_id: str) -> None:
    """The delivery's run, created and started here."""
    tx = w.tx
    driver = w.heads.driver(tx, fingerprint)
    try:
        params = codec.loads(event.payload)
    except (ValueError, RecursionError):  # stored by `emitted`, so JSON; never trusted
        params = None
    refused = None
    definition = registry.input_binder(name)
    if definition is not None:
        try:
            params = definition.bind_input(params)
        except InputError as exc:  # the run is recorded, failed with why: never lost
            refused = {"type": "InputError", "step": None,
                       "message": f"the payload of event {event.id} does not fit: {exc}"}
    steps = driver.steps(params) if isinstance(params, dict) or driver.any_input else []
    if refused is None and not steps:
        refused = {"type": "InputError", "step": None,
                   "message": f"the payload of event {event.id} is not a JSON object of "
                              f"{name}'s input"}
    text = event.payload if definition is None or refused else codec.dumps(params)
    create_run(w, run_id, name, fingerprint, driver, params, text, steps, trigger=event,
               refused=refused)  # False: delivered already (a replay overlapping live)


def ended(w: Work, run_id: str) -> None:
    """A run ended: if it was a keyed delivery, the next one of its lane starts."""
    nxt = w.tx.leave_lane(run_id)
    if nxt is None:
        return
    name, seq, next_run = nxt
    event = w.tx.topic_event(seq=seq)
    sub = next((s for s in subscriptions(w) if s.name == name), None)
    if event is not None and sub is not None:
        start(w, sub.fingerprint, sub.name, event, next_run)


def subscribers(tasks: Collection[str]) -> list[Subscriber]:
    """The definitions this process's code has that take events (handlers, and flows and
    machines with a `trigger`) and whose tasks are among `tasks`, compiled: user code,
    so outside any transaction."""
    binders = []
    out = []
    for definition in registry.subscribers():
        fingerprint, body, driver = definition.compile()
        if not driver.any_input:  # it takes an object of parameters, bound as `start` does
            binders.append(definition)
        if {p.task for p in driver.policies()} <= set(tasks):
            out.append(Subscriber(definition.name, definition.kind, definition.pattern,
                                  fingerprint, body, list(driver.children)))
    registry.keep_input_binders(binders)
    return out


@dataclass(frozen=True)
class Subscriber:
    name: str
    kind: str
    pattern: str
    fingerprint: str
    body: str
    children: list[tuple[str, str, str, str]]


def register(tx: Tx, definitions: Sequence[Subscriber]) -> list[str]:
    """Store the subscriptions of the definitions a worker's code has; returns the names
    added or changed."""
    changed = []
    for d in definitions:
        tx.put_definition(d.fingerprint, d.name, d.kind, d.body)
        for child in d.children:  # what its steps may start
            tx.put_definition(*child)
        if tx.put_subscription(d.name, d.pattern, d.fingerprint):
            changed.append(d.name)
    return changed


def sweep_replays(runtime: Settles, tx: Tx) -> int:
    """Deliver the next events of every subscription being replayed, in order; one that
    has caught up goes back to being delivered when events are stored."""
    replaying = [s for s in tx.subscriptions() if s.replay_seq is not None]
    if not replaying:
        return 0
    tx.close_topic_gate()  # first, before any lane's lock: emits wait, nothing deadlocks
    done = 0
    with runtime.work(tx) as w:
        for sub in replaying:
            assert sub.replay_seq is not None
            last = sub.replay_seq
            batch = tx.topic_events_after(last, REPLAY_BATCH)
            done += _replay(w, sub, batch)
            last = batch[-1].seq if batch else last
            # The gate is held: no event is stored between this read and going live.
            tx.advance_replay(sub.name, last, len(batch) < REPLAY_BATCH)
    return done


def _replay(w: Work, sub: SubscriptionRow, events: list[TopicEvent]) -> int:
    wanted = [e for e in events if matches(sub.pattern, e.topic)]
    ids = [delivery_id(e.id, e.created_at, sub.name) for e in wanted]
    known = w.tx.known_deliveries(ids) if ids else set()
    count = 0
    for event, run_id in zip(wanted, ids, strict=True):
        if run_id not in known:
            deliver(w, sub, event)
            count += 1
    return count
