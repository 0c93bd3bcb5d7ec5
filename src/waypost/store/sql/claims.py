"""Claims, leases and outcomes: every verb here is fenced by a lease token.

Quarantine. A worker that dies takes every attempt it held with it, and most of them did
nothing wrong: the one that crashed it (`os._exit`, a segfault in a native library) ran
beside them. So a loss is not charged to a step that ran beside others: the step is put
in quarantine (`steps.quarantine` 1), and a step in quarantine is claimed only by a worker
that holds nothing, which then claims nothing else while it runs it (`quarantine` 2:
claimed alone). Only a loss while alone is charged (`lost_alone`): the culprit reaches the
limit and the dead-letter queue, its neighbours run again alone and finish. The price is
on the rare path: a claim statement that took a quarantined step together with others
gives the others back at once, in the same transaction, and a quarantined step waits for
a worker with nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence

from ... import codec
from ...vocabulary.context import DEFAULT_HEARTBEAT
from ..records import ClaimedStep, Expired, HeldStep
from .core import (
    _CLEAR_LEASE,
    _DEAD,
    _LIVE,
    _MISSED_3,
    _TOKEN_MATCHES,
    SqlCore,
    _claimed,
    marks,
)


class ClaimVerbs(SqlCore):
    # -- claims, leases and outcomes -------------------------------------------------------
    _CLAIMED = ("id, run_id, name, node, kind, task, input, attempts, idempotency_key, "
                "lease_token, timeout, heartbeat, completion_token, quarantine")

    def claimed_with(self, owner: str, batch: str) -> list[ClaimedStep]:
        """Steps already claimed in the claim `batch`: a transaction retried after its
        commit was in fact applied (the acknowledgement was lost) finds its own earlier
        claims here, instead of leaving them running with nobody working on them."""
        rows = self.execute(f"SELECT {self._CLAIMED} FROM steps WHERE lease_owner = ? AND "
                            f"lease_token LIKE ? AND status = 'running'",
                            (owner, f"{batch}.%")).fetchall()
        return [_claimed(r) for r in rows]

    def claim(self, owner: str, batch: str, limit: int, lease: float, tasks: Sequence[str],
              external: Sequence[str] = (), alone: bool = False) -> list[ClaimedStep]:
        """Claim up to `limit` ready steps of `tasks`. Each gets its own lease token, the
        (hex) `batch` and a random part drawn by the database for that row: the tokens of
        steps claimed together share only the batch, which nobody can complete with.

        Steps of the `external` tasks (`completes_externally`) also get their completion
        token here, random on its own: it is what the other system may answer with even
        before the hand-off is recorded, and no other step ever has one to forge.

        `alone`: the worker holds nothing, so it may take a step in quarantine; if it does,
        that step is all it gets (see the module docstring)."""
        if not tasks or limit < 1:
            return []
        completion = ""
        if external:
            completion = (f"completion_token = CASE WHEN task IN ({marks(len(external))}) "
                          f"THEN 'wp1.' || CAST(id AS TEXT) || '.' || {{random}} END, ")
        rows = self.execute(
            f"UPDATE steps SET status = 'running', attempts = attempts + 1, lease_owner = ?, "
            f"lease_token = ? || '.' || {{random}}, {completion}"
            f"lease_expires_at = {{now}} + ?, started_at = {{now}}, "
            f"finished_at = NULL, timeout_at = {{now}} + timeout, heartbeat_at = {{now}}, "
            f"heartbeat_details = NULL, "
            f"heartbeat = CASE WHEN heartbeat < 0 THEN NULL ELSE heartbeat END, "
            f"quarantine = CASE WHEN quarantine = 0 THEN 0 ELSE 2 END "
            f"WHERE id IN (SELECT id FROM steps WHERE status = 'ready' AND ready_at <= {{now}} "
            f"AND task IN ({marks(len(tasks))}) {'' if alone else 'AND quarantine = 0 '}"
            f"ORDER BY ready_at, id LIMIT ? {{skip_locked}}) "
            f"RETURNING {self._CLAIMED}",
            (owner, batch, *external, lease, *tasks, limit)).fetchall()
        claimed = [_claimed(r) for r in rows]
        if alone and len(claimed) > 1 and any(c.solo for c in claimed):
            keep = min((c for c in claimed if c.solo), key=lambda c: c.id)
            self._unclaim(owner, [c.id for c in claimed if c is not keep])
            return [keep]
        return claimed

    def _unclaim(self, owner: str, step_ids: Sequence[int]) -> None:
        """Undo this transaction's claim of `step_ids`: ready again, as before it."""
        self.execute(f"UPDATE steps SET status = 'ready', attempts = attempts - 1, "
                     f"started_at = NULL, "
                     f"quarantine = CASE WHEN quarantine = 2 THEN 1 ELSE quarantine END, "
                     f"{_CLEAR_LEASE} WHERE id IN ({marks(len(step_ids))}) AND "
                     f"status = 'running' AND lease_owner = ?", (*step_ids, owner))

    def next_ready_at(self, tasks: Sequence[str]) -> float | None:
        if not tasks:
            return None
        row = self.execute(f"SELECT MIN(ready_at) FROM steps WHERE status = 'ready' AND "
                           f"task IN ({marks(len(tasks))})", tasks).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def succeed_many(self, done: Sequence[tuple[int, str, str]]) -> list[HeldStep | None]:
        """Record successful attempts (step id, lease token, output); None where the token
        no longer holds the step."""
        return [self.succeed(*d) for d in done]

    SUCCEED = (
        f"UPDATE steps SET status = 'succeeded', output = ?, error = NULL, "
        f"finished_at = {{now}}, {_CLEAR_LEASE} WHERE id = ? AND lease_token = ? AND "
        f"status = 'running' AND {_LIVE} AND (timeout_at IS NULL OR timeout_at > {{now}}) "
        f"RETURNING id, run_id, name, node, kind, map_index, attempts, max_attempts")

    def succeed(self, step_id: int, token: str, output: str) -> HeldStep | None:
        row = self.execute(self.SUCCEED, (output, step_id, token)).fetchone()
        return None if row is None else HeldStep(*row)

    def expire_queued(self, error: str, limit: int) -> list[HeldStep]:
        """Fail ready steps that waited longer than their queue_timeout for a worker. The
        update is its own fence: a step claimed meanwhile is no longer ready."""
        rows = self.execute(
            "UPDATE steps SET status = 'failed', error = ?, finished_at = {now} "
            "WHERE id IN (SELECT id FROM steps WHERE status = 'ready' AND "
            "queue_timeout IS NOT NULL AND ready_at + queue_timeout <= {now} "
            "ORDER BY ready_at LIMIT ? {skip_locked}) AND status = 'ready' "
            "RETURNING id, run_id, name, node, kind, map_index, attempts, max_attempts",
            (error, limit)).fetchall()
        return [HeldStep(*r) for r in rows]

    def hand_off(self, step_id: int, token: str, completion_token: str) -> bool:
        """The task handed its work to another system: the step stays running, holds no
        lease (nobody is working on it here), and waits for `completion_token` (the one
        its claim drew)."""
        cur = self.execute(
            f"UPDATE steps SET lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL "
            f"WHERE id = ? AND lease_token = ? AND completion_token = ? AND "
            f"status = 'running' AND {_LIVE}", (step_id, token, completion_token))
        return int(cur.rowcount) == 1

    def complete_external(self, step_id: int, completion_token: str,
                          output: str) -> HeldStep | None:
        row = self.execute(
            f"UPDATE steps SET status = 'succeeded', output = ?, error = NULL, "
            f"finished_at = {{now}}, {_CLEAR_LEASE} WHERE id = ? AND {_TOKEN_MATCHES} "
            f"AND status = 'running' "
            f"RETURNING id, run_id, name, node, kind, map_index, attempts, max_attempts",
            (output, step_id, completion_token)).fetchone()
        return None if row is None else HeldStep(*row)

    def fail_external(self, step_id: int, completion_token: str,
                      error: str) -> HeldStep | None:
        row = self.execute(
            f"SELECT id, run_id, name, node, kind, map_index, attempts, max_attempts, "
            f"started_at FROM steps WHERE id = ? AND {_TOKEN_MATCHES} AND "
            f"status = 'running' {{lock}}",
            (step_id, completion_token)).fetchone()
        if row is None:
            return None
        self.execute("INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                     "started_at, finished_at) VALUES (?, ?, NULL, 'failed', ?, ?, {now})",
                     (step_id, row[6], error, row[8]))
        return HeldStep(*row[:8])

    def end_attempt(self, step_id: int, token: str, outcome: str, error: str,
                    expired: bool) -> HeldStep | None:
        """Record a failed or lost attempt, if `token` still holds the step (live lease for
        a worker's report, expired lease for the sweeper's)."""
        cond = _DEAD if expired else _LIVE
        row = self.execute(
            f"SELECT id, run_id, name, node, kind, map_index, attempts, max_attempts, "
            f"lease_owner, started_at FROM steps WHERE id = ? AND lease_token = ? AND "
            f"status = 'running' AND {cond} {{lock}}", (step_id, token)).fetchone()
        if row is None:
            return None
        self.execute("INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                     "started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, {now})",
                     (step_id, row[6], row[8], outcome, error, row[9]))
        return HeldStep(*row[:8])

    def retry_later(self, step_id: int, delay: float, error: str,
                    extra_attempt: bool = False) -> None:
        """Back to ready after `delay`; `extra_attempt` adds one to the step's budget (an
        attempt that was not the task's fault)."""
        self.execute(f"UPDATE steps SET status = 'ready', ready_at = {{now}} + ?, error = ?, "
                     f"max_attempts = max_attempts + ?, {_CLEAR_LEASE} WHERE id = ? "
                     f"AND status = 'running'",
                     (delay, error, int(extra_attempt), step_id))

    def lost_attempts(self, step_id: int) -> int:
        """Record that the step's attempt was lost with its worker; returns how many of
        its attempts were lost *while running alone*, this one included. A loss beside
        other attempts counts nothing (the crash may have been any of them): it puts the
        step in quarantine, to be claimed alone next (see the module docstring)."""
        row = self.execute("UPDATE steps SET lost_alone = lost_alone + "
                           "CASE WHEN quarantine = 2 THEN 1 ELSE 0 END, quarantine = 1 "
                           "WHERE id = ? RETURNING lost_alone", (step_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def fail(self, step_id: int, error: str) -> None:
        self.execute(f"UPDATE steps SET status = 'failed', error = ?, finished_at = {{now}}, "
                     f"{_CLEAR_LEASE} WHERE id = ? AND status = 'running'", (error, step_id))

    def renew(self, owner: str, tokens: Sequence[str], lease: float) -> set[tuple[int, str]]:
        """Extend the leases of the attempts `owner` runs under `tokens`; returns their
        (step id, lease token): an attempt it thinks it holds that is not among them was
        lost or cancelled. By token, not by owner: a lease under the same owner name that
        this process does not run (an earlier incarnation's, killed) must run out."""
        alive: set[tuple[int, str]] = set()
        for i in range(0, len(tokens), 500):
            chunk = tokens[i:i + 500]
            rows = self.execute(f"UPDATE steps SET lease_expires_at = {{now}} + ? WHERE "
                                f"lease_owner = ? AND lease_token IN ({marks(len(chunk))}) AND "
                                f"status = 'running' AND {_LIVE} RETURNING id, lease_token",
                                (lease, owner, *chunk)).fetchall()
            alive |= {(int(r[0]), str(r[1])) for r in rows}
        return alive

    def beat(self, step_id: int, token: str, details: str) -> None:
        self.execute(f"UPDATE steps SET heartbeat_at = {{now}}, heartbeat_details = ?, "
                     f"heartbeat = COALESCE(heartbeat, ?) WHERE id = ? AND lease_token = ? "
                     f"AND status = 'running' AND {_LIVE}",
                     (details, -DEFAULT_HEARTBEAT, step_id, token))

    def expired(self, limit: int) -> list[Expired]:
        rows = self.execute(
            f"SELECT id, run_id, lease_token, lease_owner, CASE WHEN timeout_at <= {{now}} THEN "
            f"'timeout' WHEN {_MISSED_3} THEN 'heartbeat' ELSE 'lost' END "
            f"FROM steps WHERE status = 'running' AND "
            f"lease_token IS NOT NULL AND {_DEAD} ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Expired(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def release_held(self, owner: str, tokens: Sequence[str], reason: str) -> int:
        """Give back what a stopping worker runs under `tokens`: each attempt stays in the
        history as `released`, with `reason`, and keeps its number; the step gets one more
        attempt, so being interrupted is not charged against its retries."""
        error = codec.dumps({"type": "Released", "message": reason, "traceback": None})
        released = 0
        for i in range(0, len(tokens), 500):
            chunk = tokens[i:i + 500]
            held = (f"lease_owner = ? AND lease_token IN ({marks(len(chunk))}) AND "
                    f"status = 'running'")
            self.execute(f"INSERT INTO attempts (step_id, attempt, worker, outcome, error, "
                         f"started_at, finished_at) SELECT id, attempts, lease_owner, "
                         f"'released', ?, started_at, {{now}} FROM steps WHERE {held}",
                         (error, owner, *chunk))
            cur = self.execute(f"UPDATE steps SET status = 'ready', ready_at = {{now}}, "
                               f"max_attempts = max_attempts + 1, started_at = NULL, "
                               f"{_CLEAR_LEASE} WHERE {held}", (owner, *chunk))
            released += int(cur.rowcount)
        return released
