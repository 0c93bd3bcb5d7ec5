"""Reopening a run that failed or was cancelled: `resume`, and a dead letter's replay.

Both follow one set of rules: succeeded steps stay done; every step that ended without
succeeding (failed, cancelled, blocked behind a failure) is reset; a reset step that has
its input again runs as it was, one that waits for others waits again for those that have
not succeeded. A replay of a letter whose run is still open (another branch is running)
resets only that step and what its failure blocked.

Two operators resuming one run at once must not both reset it: the run's row is locked
first (PostgreSQL `FOR UPDATE`; SQLite's writer lock already serialises), so the second
sees a run that is running again and is refused; and every reset is fenced by the status
it read, so a step a worker completed meanwhile is never set back.
"""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import InputError, UnknownTargetError
from ...moments import iso
from ...statuses import OPEN_STEPS, REOPENABLE_RUNS, UNDONE_RUNS
from ...store.protocol import Tx
from ..seam import StepsFreed, encode_call
from .work import RunState, Settles, Work


def _lock(tx: Tx, run_id: str) -> dict[str, Any]:
    row = tx.lock_run(run_id)
    if row is None:
        raise UnknownTargetError(f"no run {run_id}")
    return row


def _driven(run: RunState) -> None:
    if run.driver is None:
        message = (run.broken or {}).get("message", "its definition cannot be loaded")
        raise InputError(f"run {run.id} cannot be reopened: {message}")


def _waits_for(run: RunState, node: str, succeeded: set[str]) -> int:
    assert run.driver is not None
    needs, after = run.driver.edges(node)
    return sum(d not in succeeded for d in dict.fromkeys([*needs, *after]))


def resume(runtime: Settles, tx: Tx, run_id: str) -> int:
    """Reopen a failed or cancelled run. Returns how many steps were reset."""
    with runtime.work(tx) as w:
        return reopen_run(w, run_id)


def reopen_run(w: Work, run_id: str) -> int:
    """`resume`, in `w`'s transaction (a child reopened with its parent's step too)."""
    row = _lock(w.tx, run_id)
    if row["status"] not in REOPENABLE_RUNS:
        raise InputError(f"run {run_id} is {row['status']}; only a failed run can resume "
                         "(or a cancelled one)")
    run = w.run(run_id)
    _driven(run)
    return _reopen(run, row)


def _reopen(run: RunState, row: dict[str, Any]) -> int:
    assert run.driver is not None
    tx = run.work.tx
    steps = tx.steps_of(run.id)
    succeeded = {s["name"] for s in steps if s["status"] == "succeeded"}
    items: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        if s["kind"] == "item":
            items.setdefault(s["node"], []).append(s)
    reset, freed, open_steps = 0, [], 0
    for s in steps:
        status = s["status"]
        if status == "succeeded" or status in OPEN_STEPS:
            open_steps += status != "succeeded"
            continue
        budget = s["attempts"] + run.driver.policy(s["node"], s["kind"]).max_attempts
        if s["kind"] == "item" or (s["kind"] == "task" and status == "failed" and s["input"]):
            ok = tx.reset_step(s["id"], status, "ready", 0, budget)
        elif s["kind"] == "map" and items.get(s["name"]):
            waiting = sum(i["status"] != "succeeded" for i in items[s["name"]])
            ok = tx.reset_step(s["id"], status, "running", waiting, budget)
        elif s["kind"] == "undo":
            continue
        else:
            waiting = _waits_for(run, s["name"], succeeded)
            ok = tx.reset_step(s["id"], status, "pending", waiting, budget)
            if ok and waiting == 0:
                freed.append(s["name"])
        if ok:
            reset += 1
            open_steps += 1
    tx.letters_replayed([s["id"] for s in steps if s["status"] == "failed"], None)
    tx.reopen_run(run.id, open_steps)
    run.work.made_ready += reset
    if freed:
        run.work.tell(run.id, StepsFreed(freed))
    return reset


def replay(runtime: Settles, tx: Tx, letter_id: int, input: Any = None,
           by: str | None = None) -> tuple[str, str]:
    """Run a dead step again, optionally with a patched input; its run continues from
    there. Returns (run id, step name)."""
    letter = tx.dead_letter(letter_id)
    if letter is None:
        raise UnknownTargetError(f"no dead letter {letter_id}")
    run_id, name = str(letter["run_id"]), str(letter["step"])
    row = _lock(tx, run_id)
    letter = tx.dead_letter(letter_id)  # again, now that nobody else can replay it
    assert letter is not None
    if letter["status"] not in ("dead", "closed"):  # closed: the checks below say why
        raise InputError(f"dead letter {letter_id} was already {letter['status']} "
                         f"(at {iso(letter['replayed_at'])})")
    if row["status"] in UNDONE_RUNS:
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
        patched, checksum = encode_call(input["args"], input["kwargs"])
        tx.patch_input(step["id"], patched, checksum)
    tx.letters_replayed([step["id"]], patched)
    tx.record_decision(step["id"], "replayed", by,
                       codec.dumps({"dead_letter": letter_id, "patched_input": bool(patched)}))
    with runtime.work(tx) as w:
        run = w.run(run_id)
        _driven(run)
        if row["status"] in REOPENABLE_RUNS:
            _reopen(run, row)  # resume's rules: everything the run left unfinished
        else:
            _reopen_branch(run, step)
    return run_id, name


def _reopen_branch(run: RunState, step: dict[str, Any]) -> None:
    """A run still going on: only this step, its fan-out and what its failure blocked."""
    assert run.driver is not None
    w, tx = run.work, run.work.tx
    budget = step["attempts"] + run.driver.policy(step["node"], step["kind"]).max_attempts
    if not tx.reset_step(step["id"], "failed", "ready", 0, budget):
        return
    reopened = 1
    node = step["node"] if step["kind"] == "item" else step["name"]
    if step["kind"] == "item":
        parent = tx.step_named(run.id, node)
        assert parent is not None
        if parent["status"] == "running":
            tx.reset_step(parent["id"], "running", "running", parent["waiting_on"] + 1,
                          parent["max_attempts"])
        elif tx.reset_step(parent["id"], parent["status"], "running", 1,
                           parent["max_attempts"]):
            reopened += 1
    steps = {s["name"]: s for s in tx.steps_of(run.id) if s["kind"] != "item"}
    succeeded = {n for n, s in steps.items() if s["status"] == "succeeded"}
    for later in run.driver.downstream(node):
        s = steps[later]
        if s["status"] == "upstream_failed":
            budget = run.driver.policy(later, s["kind"]).max_attempts
            if tx.reset_step(s["id"], "upstream_failed", "pending",
                             _waits_for(run, later, succeeded), budget):
                reopened += 1
    w.open_delta[run.id] += reopened
    w.made_ready += 1
