"""What a failed attempt leads to, by its step's policy: another attempt after a backoff,
an operator asked, or a dead step (and a dead letter).

These rules are the runtime's, the same for every front-end: a driver only says what a
step's policy is (`StepPolicy`), never how a failure is handled.
"""

from __future__ import annotations

from ... import codec
from ...store.records import HeldStep
from ..seam import StepPolicy
from .outcome import Outcome
from .work import Work

#: A step whose attempts were lost this many times (worker gone each time) is dead.
LOST_ATTEMPTS_LIMIT = 10


def retry_delay(policy: StepPolicy, attempts: int, max_attempts: int, fatal: bool,
                rand: float | None = None) -> float | None:
    """Seconds until the next attempt, or None: the step is out of attempts."""
    if fatal or attempts >= max_attempts:
        return None
    return policy.backoff.delay(attempts, rand)


def escalates(policy: StepPolicy, failures: int, fatal: bool) -> bool:
    """Ask an operator after every `escalate_after` failed attempts (not on Fatal: it
    says retrying cannot help, and the dead letter keeps it for a replay)."""
    every = policy.escalate_after or 0
    return every > 0 and not fatal and failures > 0 and failures % every == 0


def policy_of(w: Work, held: HeldStep) -> StepPolicy | None:
    run = w.run(held.run_id)
    return None if run.driver is None else run.driver.policy(held.node, held.kind)


def record_failure(w: Work, o: Outcome) -> bool:
    """A failed, timed-out or lost attempt, if its token still holds the step."""
    error = codec.dumps(o.error)
    held = w.tx.end_attempt(o.step_id, o.token, o.kind, error, o.expired)
    if held is None:
        return False
    if o.kind != "lost":
        after_failure(w, held, error, o.fatal)
        return True
    # An attempt whose worker vanished (crash, kill -9, partition) is the worker's failure,
    # not the task's: retried at once without using up the task's retries, unless the step
    # has lost so many workers that it is probably what kills them.
    if w.tx.lost_attempts(held.id) < LOST_ATTEMPTS_LIMIT:
        w.tx.retry_later(held.id, 0.0, error, extra_attempt=True)
        return True
    w.step_dead(held, codec.dumps({**(o.error or {}), "message": (
        f"{held.name} lost its worker {LOST_ATTEMPTS_LIMIT} times; it may be what crashes "
        "it (memory, a native library): see the workers' logs")}))
    return True


def after_failure(w: Work, held: HeldStep, error: str, fatal: bool) -> None:
    """Ask an operator, retry per the step's policy (and its retry budget), or the step
    is dead."""
    tx = w.tx
    policy = policy_of(w, held)
    if policy is None:  # the run cannot be driven: no policy to retry by
        w.step_dead(held, error)
        return
    if policy.escalate_after and escalates(policy, tx.failed_attempts(held.id), fatal):
        tx.escalate(held.id, error, policy.escalation_timeout)
        tx.attention(held.run_id)
        return
    delay = retry_delay(policy, held.attempts, held.max_attempts, fatal)
    if delay is None:
        w.step_dead(held, error)
        return
    budget = policy.retry_budget
    if budget and not tx.spend_retry(policy.task, budget[0], budget[1]):
        detail = codec.loads(error) or {}
        per = f"{budget[0]} per {budget[1]:g}s"
        refused = {**detail, "type": "RetryBudgetExhausted",
                   "message": f"retry refused: the retry budget of task {policy.task} ({per}) "
                              f"is spent; last error: {detail.get('type')}: "
                              f"{detail.get('message')}"}
        w.step_dead(held, codec.dumps(refused))
        return
    tx.retry_later(held.id, delay, error)
