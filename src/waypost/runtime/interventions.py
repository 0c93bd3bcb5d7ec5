"""What moves a run that no worker moves: timers firing, people approving or rejecting a
gate, operators answering an escalation, and dead letters replayed.

Each is one transaction through the same advance as a worker's outcome, fenced by the
step's status: a timer fires once, a gate is decided once, an operator's answer applies to
the step only while it waits for one.
"""

from __future__ import annotations

from typing import Any

from .. import codec
from ..dag.driver import encode_input
from ..errors import InputError, UnknownTargetError
from ..store.protocol import Tx
from ..store.records import HeldStep
from .advance import Advancer, Pending, RunInfo
from .view import iso

ENDED_BY_COMPENSATION = ("compensating", "compensated", "compensation_failed")


def _error(kind: str, message: str, **extra: Any) -> str:
    return codec.dumps({"type": kind, "message": message, "traceback": None, **extra})


def _ended(adv: Advancer, p: Pending, held: HeldStep | None, output: str | None) -> None:
    """A waiting step ended (succeeded with `output`, or failed): on to its successors."""
    if held is None:
        return
    if output is not None:
        adv.succeeded(p, held, output)
        return
    run = adv.run_of(p, held.run_id)
    p.open_delta[run.id] -= 1
    adv.after_end(p, run, held, succeeded=False)


def sweep_waits(adv: Advancer, tx: Tx, limit: int = 100) -> int:
    """Fire due sleeps, time out gates, and answer escalations nobody answered (per
    `on_escalation_timeout`)."""
    due = tx.due_waits(limit)
    if not due:
        return 0
    p = Pending(tx)
    for step_id, run_id, name, kind, status in due:
        run = adv.run_of(p, run_id)
        at = iso(p.now())
        if status == "needs_attention":
            step = tx.step_named(run_id, name)
            if step is not None and step["status"] == "needs_attention":
                options = run.driver.options(step["node"], step["kind"])
                _apply(adv, p, run_id, step, options.get("on_escalation_timeout", "fail"),
                       None, None, timed_out=True)
                tx.attention(run_id)
        elif kind == "sleep":
            output = codec.dumps({"woke_at": at})
            _ended(adv, p, tx.end_wait(step_id, "waiting", "succeeded", output, None), output)
        else:
            _gate_timeout(adv, p, run, step_id, name, at)
    adv.finish_items(p)
    adv.settle(p)
    return len(due)


def _gate_timeout(adv: Advancer, p: Pending, run: RunInfo, step_id: int, name: str,
                  at: str | None) -> None:
    tx = p.tx
    on_timeout = run.driver.graph.nodes[name].options["on_timeout"]
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
        _ended(adv, p, held, output)
    else:
        error = _error("GateTimeout", f"gate {name} was not approved in time")
        held = tx.end_wait(step_id, "waiting", "failed", None, error)
        if held is not None:
            tx.record_decision(step_id, "timed_out", None, error)
        _ended(adv, p, held, None)


def _step(tx: Tx, run_id: str, name: str) -> dict[str, Any]:
    if tx.get_run(run_id) is None:
        raise UnknownTargetError(f"no run {run_id}")
    step = tx.step_named(run_id, name)
    if step is None:
        raise UnknownTargetError(f"run {run_id} has no step {name!r}")
    return step


def decide_gate(adv: Advancer, tx: Tx, run_id: str, gate: str, approve: bool,
                by: str | None, reason: str | None) -> None:
    step = _step(tx, run_id, gate)
    if step["kind"] != "gate":
        raise InputError(f"step {gate} of run {run_id} is not a gate; "
                         "an escalated task is answered with waypost retry, skip or fail")
    was = step["status"]
    if was not in ("waiting", "needs_attention"):
        hint = ("it has not been reached yet" if was == "pending" else
                "it was already decided" if was in ("succeeded", "failed") else f"it is {was}")
        raise InputError(f"gate {gate} of run {run_id} is not waiting for a decision: {hint}")
    p = Pending(tx)
    at = iso(p.now())
    if approve:
        output = codec.dumps({"approved": True, "by": by, "at": at, "reason": reason})
        held = tx.end_wait(step["id"], was, "succeeded", output, None)
        tx.record_decision(step["id"], "approved", by, None)
        _ended(adv, p, held, output)
    else:
        error = _error("GateRejected", f"rejected by {by or 'an operator'}: {reason}", by=by,
                       at=at)
        held = tx.end_wait(step["id"], was, "failed", None, error)
        tx.record_decision(step["id"], "rejected", by, error)
        _ended(adv, p, held, None)
    tx.attention(run_id)
    adv.finish_items(p)
    adv.settle(p)


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
    p = Pending(tx)
    _apply(adv, p, run_id, step, action, by, output)
    tx.attention(run_id)
    adv.finish_items(p)
    adv.settle(p)


ANSWERS = {"retry": "retried", "skip": "skipped", "fail": "failed"}


def _failed_undo(step: dict[str, Any]) -> bool:
    return bool(step["kind"] == "undo" and step["status"] == "failed")


def _apply(adv: Advancer, p: Pending, run_id: str, step: dict[str, Any], action: str,
           by: str | None, output: Any, timed_out: bool = False) -> None:
    """Carry out an answer (from a person, or from `on_escalation_timeout` when nobody
    gave one) and record it in the step's history."""
    tx, was, failed_undo = p.tx, step["status"], _failed_undo(step)
    run = adv.run_of(p, run_id)
    options = run.driver.options(step["node"], step["kind"])
    decision = "escalation_timeout" if timed_out else ANSWERS[action]
    if action == "retry":
        more = options.get("escalate_after") or 1
        tx.retry_now(step["id"], was, max(step["max_attempts"], step["attempts"] + more))
        tx.record_decision(step["id"], decision, by, _error(
            "EscalationTimeout", "nobody answered in time: retried") if timed_out else None)
        tx.letters_replayed([step["id"]], None)
        p.made_ready += 1
        if failed_undo:
            p.open_delta[run_id] += 1
            tx.set_run_status(run_id, "compensating", ["compensation_failed"])
    elif action == "skip":
        text = codec.dumps(output)
        held = tx.end_wait(step["id"], was, "succeeded", text, None)
        tx.record_decision(step["id"], decision, by, _error(
            "EscalationTimeout", "nobody answered in time: skipped") if timed_out else None)
        if failed_undo:
            tx.set_run_status(run_id, "compensating", ["compensation_failed"])
            if not tx.next_compensation(run_id, (step["map_index"] or 0) + 1):
                tx.end_compensation(run_id)
        else:
            _ended(adv, p, held, text)
    else:
        error = (_error("EscalationTimeout", f"no operator answered within the "
                        f"escalation_timeout of {step['name']}; the step failed")
                 if timed_out else
                 _error("FailedByOperator", f"failed by {by or 'an operator'}", by=by))
        tx.record_decision(step["id"], decision, by, error)
        if failed_undo:
            tx.end_compensation(run_id, "compensation_failed", "compensation_failed")
        else:
            held = tx.end_wait(step["id"], was, "failed", None, error)
            if held is not None:
                adv.dead(p, held, error)


def replay(adv: Advancer, tx: Tx, letter_id: int, input: Any = None,
           retry: bool = False) -> tuple[str, str]:
    """Run a dead step again, optionally with a patched input; its run continues from
    there. Returns (run id, step name)."""
    letter = tx.dead_letter(letter_id)
    if letter is None:
        raise UnknownTargetError(f"no dead letter {letter_id}")
    if letter["status"] != "dead":
        if retry:
            return str(letter["run_id"]), str(letter["step"])
        raise InputError(f"dead letter {letter_id} was already {letter['status']} "
                         f"(at {iso(letter['replayed_at'])})")
    run_id, name = str(letter["run_id"]), str(letter["step"])
    row = tx.get_run(run_id)
    assert row is not None
    if row["status"] in ENDED_BY_COMPENSATION:
        raise InputError(f"run {run_id} is {row['status']}: what it did was undone, so it "
                         "cannot continue; start a new run")
    step = tx.step_named(run_id, name)
    assert step is not None
    if step["status"] != "failed":
        raise InputError(f"step {name} of run {run_id} is {step['status']} now (resumed or "
                         "retried since it died); nothing to replay")
    patched = None
    if input is not None:
        if (not isinstance(input, dict) or set(input) != {"args", "kwargs"}
                or not isinstance(input["args"], list) or not isinstance(input["kwargs"], dict)):
            raise InputError('--input is the step\'s input as `waypost dlq show` prints it: '
                             '{"args": [...], "kwargs": {...}}')
        patched, checksum = encode_input(input["args"], input["kwargs"])
        tx.patch_input(step["id"], patched, checksum)
    tx.letters_replayed([step["id"]], patched)
    p = Pending(tx)
    run = adv.run_of(p, run_id)
    graph = run.driver.graph
    budget = step["attempts"] + run.driver.options(step["node"], step["kind"])["max_attempts"]
    tx.reset_step(step["id"], "ready", 0, budget)
    tx.record_decision(step["id"], "replayed", None,
                       codec.dumps({"dead_letter": letter_id, "patched_input": bool(patched)}))
    reopened = 1
    node = step["node"] if step["kind"] == "item" else name
    if step["kind"] == "item":
        parent = tx.step_named(run_id, node)
        assert parent is not None
        if parent["status"] == "running":
            tx.reset_step(parent["id"], "running", parent["waiting_on"] + 1,
                          parent["max_attempts"])
        else:
            tx.reset_step(parent["id"], "running", 1, parent["max_attempts"])
            reopened += 1
    steps = {s["name"]: s for s in tx.steps_of(run_id) if s["kind"] != "item"}
    for later in graph.downstream(node):
        if steps[later]["status"] == "upstream_failed":
            waiting = sum(steps[d]["status"] != "succeeded" for d in graph.nodes[later].deps)
            tx.reset_step(steps[later]["id"], "pending", waiting,
                          graph.nodes[later].options["max_attempts"])
            reopened += 1
    if row["status"] in ("failed", "cancelled"):
        tx.reopen_run(run_id, reopened)
    else:
        p.open_delta[run_id] += reopened
    p.made_ready += 1
    adv.settle(p)
    return run_id, name

