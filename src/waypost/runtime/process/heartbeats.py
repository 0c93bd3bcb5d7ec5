"""Lease renewal: how a worker keeps its attempts, and learns which it no longer holds.

Every way an attempt can end without its worker saying so — a lease that ran out, a
timeout, three missed heartbeats, a run deadline, `cancel` — is a write fenced on the step
still being `running`. The renewal returns the attempts the worker still holds; the rest
are cancelled (docs/architecture.md, "Ending attempts from outside"). The same transaction
passes on the heartbeats tasks sent since the last one, and tells the store the worker is
alive.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...store import Store
from ...store.protocol import Tx
from ...vocabulary.context import DEFAULT_HEARTBEAT
from .held import HeldAttempts, Key


@dataclass
class LeaseRenewal:
    worker_id: str
    lease: float

    def period(self, held: HeldAttempts) -> float:
        """Renew leases every third of a lease, and pass on task heartbeats at least twice
        per interval any held task promised (or, having beaten, is held to by default)."""
        intervals = [h.step.heartbeat or DEFAULT_HEARTBEAT for h in held.attempts.values()
                     if h.step.heartbeat or h.beating]
        return min([self.lease / 3, *(i / 2 for i in intervals)])

    def renew(self, store: Store, held: HeldAttempts) -> int:
        """Renew the leases of the attempts still held and cancel those the store says
        are no longer ours; returns how many were cancelled."""
        beats, tokens = [], []
        for entry in held.attempts.values():
            if not entry.abandoned:
                tokens.append(entry.step.lease_token)
            details = entry.heart.take()
            if details is not None and not entry.abandoned:
                beats.append((entry.step.id, entry.step.lease_token, details))
                entry.beating = True

        def work(tx: Tx) -> set[Key]:
            tx.worker_alive(self.worker_id)
            for step_id, token, details in beats:
                tx.beat(step_id, token, details)
            return tx.renew(self.worker_id, tokens, self.lease) if tokens else set()

        return held.cancel_all_but(store.transact(work))
