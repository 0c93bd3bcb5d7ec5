"""How a run comes to be, whoever starts it: `Engine.start`, a topic event's delivery, or
a parent's step. Written once, so every run is created under the same rules: its row
(the id and the key are the unique constraints that make a retried start find its first
try's run), its steps, its head cached, and its driver told `Started`.
"""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import IdempotencyConflict
from ...store.protocol import Tx
from ...store.records import NewStep, TopicEvent
from ..seam import Definition, Driver, Started
from .heads import new_run_id
from .work import RunState, Settles, Work, keys


def create_run(w: Work, run_id: str, name: str, fingerprint: str, driver: Driver,
               params: Any, text: str, steps: list[NewStep], *, key: str | None = None,
               deadline: float | None = None, parent: tuple[str, str] | None = None,
               trigger: TopicEvent | None = None,
               refused: dict[str, Any] | None = None) -> bool:
    """Create the run in `w`'s transaction, its driver told `Started` (or, `refused`,
    the run failed with why: recorded, never lost). False, with nothing written, when the
    id or the key exists already.

    `parent` is (run, step) for a child run; `trigger` the topic event a delivery runs
    for (its correlation, and its key's lane)."""
    tx = w.tx
    lane = trigger.key if trigger is not None else None
    if not tx.insert_run(run_id, name, fingerprint, key, text, codec.checksum(text),
                         len(steps), trigger.correlation_id if trigger else None,
                         trigger.seq if trigger else None, lane):
        return False
    if parent is not None:
        tx.link_child(run_id, *parent)
    tx.insert_steps(run_id, steps, keys(run_id, steps))
    if deadline is not None:
        tx.set_deadline(run_id, deadline)
    w.made_ready += sum(s.status == "ready" for s in steps)
    w.heads.remember(run_id, (fingerprint, text, parent[0] if parent else None, lane))
    w.runs[run_id] = RunState(run_id, driver, params if steps else {}, w)
    if refused is not None:
        w.fail_run(run_id, refused)
    else:
        w.tell(run_id, Started())
    return True


def start(runtime: Settles, tx: Tx, definition: Definition, params: dict[str, Any],
          key: str | None, run_id: str | None = None, deadline: float | None = None,
          compiled: tuple[str, str, Driver] | None = None) -> tuple[str, bool]:
    """Create a run of `definition`, or return the run that already has `key` with the
    same input.

    Pass `compiled`, from `definition.compile()` called before the transaction: that runs
    user code, which must not run while the transaction holds the database's write lock.
    Pass a `run_id` chosen outside the transaction: if a first try's commit went through
    unacknowledged, the retry finds that run instead of making a second."""
    fingerprint, body, driver = compiled or definition.compile()
    run_id = run_id or new_run_id()
    text = codec.dumps(params)
    with runtime.work(tx) as w:
        w.heads.keep_driver(fingerprint, driver)
        if fingerprint not in w.heads.stored:
            tx.put_definition(fingerprint, definition.name, definition.kind, body)
            for child in driver.children:  # what its steps may start
                tx.put_definition(*child)
        if create_run(w, run_id, definition.name, fingerprint, driver, params, text,
                      driver.steps(params), key=key, deadline=deadline):
            return run_id, True
    if tx.run_head(run_id) is not None:
        return run_id, False
    assert key is not None
    existing, existing_definition, existing_checksum = tx.run_by_key(key)
    if existing_definition == definition.name and codec.same_checksum(existing_checksum, text):
        return existing, False
    raise IdempotencyConflict(key, existing)
