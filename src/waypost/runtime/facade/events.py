"""Events from outside a run: signals sent to one state machine run, and topic events
published to every handler (or triggered definition) whose pattern matches."""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import InputError, UnknownTargetError
from ...store.protocol import Tx
from ...vocabulary.topics import Emitted, emitted
from ..core import deliveries, signals
from ..seam import RESERVED_EVENTS
from .base import EngineBase


class Events(EngineBase):
    def send(self, target: str, event: str, payload: Any = None, *,
             id: str | None = None) -> dict[str, Any]:
        """Send `event` to a state machine run, addressed by its id (or a unique prefix)
        or its key. The event is stored before this returns; with an `id` it is stored
        once however often it is sent. Returns `run_id`, `event` (its number), `duplicate`,
        and `status` (`consumed` with the `state` that took it, `pending` while an action
        runs or a worker must decide, `deferred`, `ignored` or `unhandled`)."""
        if not isinstance(event, str) or not event:
            raise InputError("an event is named by a non-empty string")
        if event.startswith(RESERVED_EVENTS):
            raise InputError(f"event names starting {RESERVED_EVENTS!r} are waypost's own; "
                             f"{event!r} was not sent")
        if id is not None:
            codec.check_key(id)
        try:
            text = codec.dumps(payload, codec.MAX_DEPTH)
        except TypeError as exc:
            raise InputError(f"the payload of event {event!r} must be JSON: {exc}") from None
        if not target:
            raise InputError("a run id or key cannot be empty")
        return dict(self._transact(
            lambda tx: signals.send(self._advancer, tx, target, event, text, id, _address)))

    def emit(self, topic: str, payload: Any = None, *, key: str | None = None,
             id: str | None = None) -> dict[str, Any]:
        """Publish an event on `topic`: stored, with a delivery started for every handler
        (or triggered definition) whose pattern matches, before this returns. Events with
        the same `key` reach each handler in order; with an `id`, emitting again stores
        nothing (`duplicate`). Returns `id`, `seq`, `duplicate` and `deliveries`. Inside a
        step, use `wp.emit`, which commits with the step's outcome."""
        return self.emit_many([(topic, payload, key, id)])[0]

    def emit_many(self, events: list[tuple[str, Any, str | None, str | None]]
                  ) -> list[dict[str, Any]]:
        """Publish (topic, payload, key, id) events in one transaction: all or none."""
        checked = [emitted(*e) for e in events]  # ids drawn here: a retried commit stores once
        return list(self._transact(lambda tx: self._publish(tx, checked), request=False))

    def _publish(self, tx: Tx, events: list[Emitted]) -> list[dict[str, Any]]:
        with self._advancer.work(tx) as w:
            return deliveries.publish(w, events)

    def replay_topic(self, handler: str, since: float) -> int:
        """Deliver to `handler` (its name) the events stored from `since` (Unix seconds)
        that it has not had, in order, before any new one; returns how many events lie after
        the replay's start (of every topic: the handler takes those its pattern matches)."""
        count = self._transact(lambda tx: tx.replay_subscription(handler, since))
        if count is None:
            raise UnknownTargetError(f"no subscription {handler!r} (a worker with the "
                                     "handler's code registers it when it starts)")
        return int(count)


def _address(tx: Tx, target: str) -> str:
    """A run named by its id, its key, or a unique prefix of its id."""
    if tx.run_head(target) is not None:
        return target
    by_key = tx.run_id_by_key(target)
    if by_key is not None:
        return str(by_key)
    ids = tx.run_ids_like(target)
    if len(ids) != 1:
        which = "no run" if not ids else "more than one run"
        raise UnknownTargetError(f"{which} matches {target!r} (as a run id, a prefix of one, "
                                 "or a key)")
    return str(ids[0])
