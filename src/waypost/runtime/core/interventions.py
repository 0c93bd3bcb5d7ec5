"""What moves a run that no worker moves: timers firing, people approving or rejecting a
gate, operators answering an escalation, and dead letters replayed.

Each is one transaction through the same advance as a worker's outcome, fenced by the
step's status: a timer fires once, a gate is decided once, an operator's answer applies to
the step only while it waits for one.
"""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import InputError, UnknownTargetError
from ...moments import iso
from ...statuses import ACTIVE_RUNS
from ...store.protocol import Tx
from ...store.records import HeldStep
from . import signals
from .advance import Advancer
from .work import RunState, Work


def _error(kind: str, message: str, **extra: Any) -> str:
    return codec.dumps({"type": kind, "message": message, "traceback": None, **extra})


def _ended(adv: Advancer, w: Work, held: HeldStep | None, output: str | None) -> None:
    """A waiting step ended (succeeded with `output`, or failed): on to its successors."""
    if held is None:
        return
    if output is not None:
        adv.succeeded(w, held, output)
        return
    w.open_delta[held.run_id] -= 1
    adv.after_end(w, w.run(held.run_id), held, succeeded=False)


def sweep_waits(adv: Advancer, tx: Tx, limit: int = 100) -> int:
    """Fire due sleeps, time out gates, and answer escalations nobody answered (per
    `on_escalation_timeout`)."""
    due = tx.due_waits(limit)
    if not due:
        return 0
    with adv.work(tx) as w:
        for step_id, run_id, name, kind, status in due:
            run = w.run(run_id)
            at = iso(w.now())
            if run.driver is None:
                adv.fail_run(run, run.broken or {}, settled=False)
            elif status == "needs_attention":
                step = tx.step_named(run_id, name)
                if step is not None and step["status"] == "needs_attention":
                    policy = run.driver.policy(step["node"], step["kind"])
                    _apply(adv, w, run_id, step, policy.on_escalation_timeout, None, None,
                           timed_out=True)
                    tx.attention(run_id)
            elif kind == "sleep":
                output = codec.dumps({"woke_at": at})
                _ended(adv, w, tx.end_wait(step_id, "waiting", "succeeded", output, None),
                       output)
            elif kind == "event":
                _event_timeout(adv, w, run, step_id, name)
            else:
                _gate_timeout(adv, w, run, step_id, name, at)
    return len(due)


def _event_timeout(adv: Advancer, w: Work, run: RunState, step_id: int, name: str) -> None:
    """No event came in time: the wait fails, or (`on_timeout="continue"`) succeeds with
    no event (null)."""
    assert run.driver is not None
    w.tx.drop_topic_waits([step_id])
    if run.driver.policy(name, "event").on_timeout == "continue":
        _ended(adv, w, w.tx.end_wait(step_id, "waiting", "succeeded", "null", None), "null")
        return
    error = _error("EventTimeout", f"no event came in time for step {name}")
    _ended(adv, w, w.tx.end_wait(step_id, "waiting", "failed", None, error), None)


def _gate_timeout(adv: Advancer, w: Work, run: RunState, step_id: int, name: str,
                  at: str | None) -> None:
    tx = w.tx
    assert run.driver is not None
    on_timeout = run.driver.policy(name, "gate").on_timeout
    if on_timeout == "escalate":
        if tx.escalate_wait(step_id):
            tx.record_decision(step_id, "timed_out", None, _error(
                "GateTimeout", "nobody decided in time: escalated to an operator"))
            tx.attention(run.id)
    elif on_timeout == "approve":
        output = codec.dumps({"approved": True, "by": None, "at": at, "reason": "timeout"})
        held = tx.end_wait(step_id, "waiting", "succeeded", output, None)
        if held is not None:
            tx.record_decision(step_id, "approved", None, _error("GateTimeout", "timed out"))
        _ended(adv, w, held, output)
    else:
        error = _error("GateTimeout", f"gate {name} was not approved in time")
        held = tx.end_wait(step_id, "waiting", "failed", None, error)
        if held is not None:
            tx.record_decision(step_id, "timed_out", None, error)
        _ended(adv, w, held, None)


def _step(tx: Tx, run_id: str, name: str) -> dict[str, Any]:
    if tx.lock_run(run_id) is None:
        raise UnknownTargetError(f"no run {run_id}")
    step = tx.step_named(run_id, name)
    if step is None:
        raise UnknownTargetError(f"run {run_id} has no step {name!r}")
    return step


def decide_gate(adv: Advancer, tx: Tx, run_id: str, gate: str, approve: bool,
                by: str | None, reason: str | None) -> None:
    row = tx.lock_run(run_id)
    if row is not None and tx.step_named(run_id, gate) is None:
        state, _, seq = tx.machine(run_id)
        if state is not None:
            if row["status"] not in ACTIVE_RUNS:
                raise InputError(f"run {run_id} has ended ({row['status']}): nothing waits "
                                 "for a decision")
            _machine_gate(adv, tx, run_id, gate, approve, by, reason, state, seq)
            return
    step = _step(tx, run_id, gate)
    if step["kind"] != "gate":
        raise InputError(f"step {gate} of run {run_id} is not a gate; "
                         "an escalated task is answered with waypost retry, skip or fail")
    was = step["status"]
    if was not in ("waiting", "needs_attention"):
        hint = ("it has not been reached yet" if was == "pending" else
                "it was already decided" if was in ("succeeded", "failed") else f"it is {was}")
        raise InputError(f"gate {gate} of run {run_id} is not waiting for a decision: {hint}")
    with adv.work(tx) as w:
        at = iso(w.now())
        if approve:
            output = codec.dumps({"approved": True, "by": by, "at": at, "reason": reason})
            held = tx.end_wait(step["id"], was, "succeeded", output, None)
            tx.record_decision(step["id"], "approved", by, None)
            _ended(adv, w, held, output)
        else:
            error = _error("GateRejected", f"rejected by {by or 'an operator'}: {reason}",
                           by=by, at=at)
            held = tx.end_wait(step["id"], was, "failed", None, error)
            tx.record_decision(step["id"], "rejected", by, error)
            _ended(adv, w, held, None)
        tx.attention(run_id)


def _machine_gate(adv: Advancer, tx: Tx, run_id: str, gate: str, approve: bool,
                  by: str | None, reason: str | None, state: str, seq: int) -> None:
    """A machine's gate is a waiting state: approving sends it the event `approved`,
    rejecting `rejected` (with who and why as the payload), recorded on the visit."""
    if state != gate:
        raise InputError(f"run {run_id} is in state {state}, not {gate}: only the state it "
                         "waits in can be approved or rejected")
    name = "approved" if approve else "rejected"
    payload = {"by": by, "reason": reason}
    sent = signals.send(adv, tx, run_id, name, codec.dumps(payload), None)
    if sent["status"] != "consumed":
        raise InputError(f"state {gate} of run {run_id} does not take {name!r} now "
                         f"(the event was {sent['status']})")
    visit = tx.step_named(run_id, f"{state}#{seq}")
    if visit is not None:
        tx.record_decision(visit["id"], name, by, None if approve else _error(
            "GateRejected", f"rejected by {by or 'an operator'}: {reason}", by=by))


def answer(adv: Advancer, tx: Tx, run_id: str, name: str, action: str, by: str | None,
           output: Any = None) -> None:
    """An operator's answer to a step that needs attention (or a failed compensation):
    `retry` it, `skip` it as if it had returned `output`, or `fail` it for good."""
    step = _step(tx, run_id, name)
    if step["kind"] == "gate":
        raise InputError(f"{name} is a gate: decide it with waypost approve or reject")
    if step["status"] != "needs_attention" and not _failed_undo(step):
        raise InputError(f"step {name} of run {run_id} is {step['status']}; operators answer "
                         "steps that need attention (waypost runs --status needs_attention) "
                         "or failed compensations")
    if action not in ANSWERS:
        raise InputError(f"an operator may retry, skip or fail a step, not {action!r}")
    with adv.work(tx) as w:
        _apply(adv, w, run_id, step, action, by, output)
        tx.attention(run_id)


ANSWERS = {"retry": "retried", "skip": "skipped", "fail": "failed"}


def _failed_undo(step: dict[str, Any]) -> bool:
    return bool(step["kind"] == "undo" and step["status"] == "failed")


def _apply(adv: Advancer, w: Work, run_id: str, step: dict[str, Any], action: str,
           by: str | None, output: Any, timed_out: bool = False) -> None:
    """Carry out an answer (from a person, or from `on_escalation_timeout` when nobody
    gave one) and record it in the step's history."""
    tx, was, failed_undo = w.tx, step["status"], _failed_undo(step)
    run = w.run(run_id)
    if run.driver is None:
        raise InputError(f"run {run_id} cannot be driven: {(run.broken or {}).get('message')}")
    policy = run.driver.policy(step["node"], step["kind"])
    decision = "escalation_timeout" if timed_out else ANSWERS[action]
    if action == "retry":
        more = policy.escalate_after or 1
        if not tx.retry_now(step["id"], was, max(step["max_attempts"], step["attempts"] + more)):
            return  # answered meanwhile: the status it was read in is gone
        tx.record_decision(step["id"], decision, by, _error(
            "EscalationTimeout", "nobody answered in time: retried") if timed_out else None)
        tx.letters_replayed([step["id"]], None)
        w.made_ready += 1
        if failed_undo:
            w.open_delta[run_id] += 1
            tx.set_run_status(run_id, "compensating", ["compensation_failed"])
    elif action == "skip":
        text = codec.dumps(output)
        held = tx.end_wait(step["id"], was, "succeeded", text, None)
        if held is None:
            return
        tx.record_decision(step["id"], decision, by, _error(
            "EscalationTimeout", "nobody answered in time: skipped") if timed_out else None)
        if failed_undo:
            tx.set_run_status(run_id, "compensating", ["compensation_failed"])
            if not tx.next_compensation(run_id, (step["map_index"] or 0) + 1):
                tx.end_compensation(run_id)
        else:
            _ended(adv, w, held, text)
    else:
        error = (_error("EscalationTimeout", f"no operator answered within the "
                        f"escalation_timeout of {step['name']}; the step failed")
                 if timed_out else
                 _error("FailedByOperator", f"failed by {by or 'an operator'}", by=by))
        if failed_undo:
            tx.record_decision(step["id"], decision, by, error)
            tx.end_compensation(run_id, "compensation_failed", "compensation_failed")
        else:
            held = tx.end_wait(step["id"], was, "failed", None, error)
            if held is not None:
                tx.record_decision(step["id"], decision, by, error)
                adv.dead(w, held, error, failed=True)
