"""Schedules: flows started at their due times (schedule.py says when), each due time at
most once however many workers look.

Every worker stores the schedules its code has when it starts, and looks for due ones
on each sweep. Two fences make a due time fire once: moving a schedule's next fire is
fenced by the due time it read (of two workers, one moves it; PostgreSQL also skips the
row another worker has locked), and the fire's run has the key `schedule:NAME:TIME`, so
even a fire repeated after a pause and resume starts no second run.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ... import codec
from ...errors import IdempotencyConflict, UnknownTargetError
from ...moments import iso
from ...registry import registry
from ...store.protocol import Tx
from ...store.records import ScheduleRow
from ...vocabulary.schedule import describe, latest_due, local_iso, next_fire, on_time
from ..seam import Driver
from . import runs
from .advance import Advancer
from .heads import new_run_id

log = logging.getLogger("waypost.schedules")

#: Due schedules one sweep fires.
BATCH = 20


@dataclass(frozen=True)
class Scheduled:
    name: str
    kind: str
    fingerprint: str
    body: str
    spec: dict[str, Any]
    children: list[tuple[str, str, str, str]]


def scheduled(tasks: Collection[str]) -> list[Scheduled]:
    """The scheduled definitions this process's code has whose tasks are among `tasks`,
    compiled: user code, so outside any transaction."""
    out = []
    for definition in registry.schedules():
        assert definition.schedule is not None  # what `schedules` lists has one
        fingerprint, body, driver = definition.compile()
        if {p.task for p in driver.policies()} <= set(tasks):
            out.append(Scheduled(definition.name, definition.kind, fingerprint, body,
                                 definition.schedule, list(driver.children)))
    return out


def register(tx: Tx, found: Sequence[Scheduled]) -> list[str]:
    """Store the schedules of a worker's code; a new or changed one fires from now on (no
    due time before it was stored), and one its code no longer has is removed. Returns
    the names added, changed or removed."""
    changed = tx.drop_schedules(registry.unscheduled())
    if not found:
        return changed
    now = tx.now()
    for s in found:
        tx.put_definition(s.fingerprint, s.name, s.kind, s.body)
        for child in s.children:
            tx.put_definition(*child)
        if tx.put_schedule(s.name, s.fingerprint, codec.dumps(s.spec), next_fire(s.spec, now)):
            changed.append(s.name)
    return changed


class _Stored:
    """A scheduled definition as the store has it (a `Definition` to `Advancer.start`):
    any worker fires it, with or without its code."""

    kind = "dag"

    def __init__(self, row: ScheduleRow, driver: Driver, deadline: float | None) -> None:
        self.name, self.fingerprint, self.driver = row.name, row.fingerprint, driver
        self.default_deadline = deadline

    def compile(self) -> tuple[str, str, Driver]:
        return self.fingerprint, "", self.driver  # stored already: the body is not needed

    def bind_input(self, data: Any) -> dict[str, Any]:
        return dict(data)


def sweep(adv: Advancer, tx: Tx, now: float | None = None) -> int:
    """Fire the schedules due at `now` (the database's clock); returns how many runs
    started."""
    now = tx.now() if now is None else now
    fired = 0
    for row in tx.due_schedules(now, BATCH):
        assert row.next_at is not None
        try:
            spec = codec.loads(row.spec)
            due = latest_due(spec, row.next_at, now)
            following = next_fire(spec, due)
            later = next_fire(spec, now)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            log.warning("schedule %s is paused: its stored spec cannot be read (%s)",
                        row.name, exc)
            tx.pause_schedule(row.name, True, None)
            continue
        fire = on_time(due, following, now) or spec["missed"] == "once"
        run_id = new_run_id() if fire else None
        if not tx.advance_schedule(row.name, row.next_at, later, due if fire else None, run_id):
            continue  # another worker moved it on
        if run_id is not None:
            fired += _fire(adv, tx, row, spec, due, run_id)
    return fired


def _fire(adv: Advancer, tx: Tx, row: ScheduleRow, spec: dict[str, Any], due: float,
          run_id: str) -> int:
    try:
        driver = adv.driver(tx, row.fingerprint)
    except (UnknownTargetError, LookupError, ValueError, TypeError, KeyError) as exc:
        log.warning("schedule %s did not fire at %s: its definition cannot be loaded (%s)",
                    row.name, iso(due), exc)
        return 0
    definition = _Stored(row, driver, spec.get("deadline"))
    adv.stored.add(row.fingerprint)  # the schedule's row refers to it: it is stored
    params = dict(spec.get("input") or {})
    if spec.get("time_param"):
        params["scheduled_at"] = iso(due)
    key = f"schedule:{row.name}:{iso(due)}"
    try:
        _, new = runs.start(adv, tx, definition, params, key, run_id, definition.default_deadline,
                           definition.compile())
    except IdempotencyConflict:  # fired already, with the input an older spec gave
        return 0
    return int(new)


def listing(tx: Tx) -> list[dict[str, Any]]:
    """Every schedule, as `waypost schedules --json` prints it."""
    out = []
    for row in tx.schedules():
        try:
            spec = codec.loads(row.spec)
        except (ValueError, RecursionError):
            spec = {}
        tz = spec.get("tz", "UTC")
        out.append({
            "name": row.name, "when": describe(spec) if spec else None,
            "cron": spec.get("cron"), "every": spec.get("every"), "tz": tz,
            "missed": spec.get("missed"), "paused": row.paused,
            "next_fire": None if row.paused else iso(row.next_at),
            "next_fire_local": None if row.paused else local_iso(row.next_at, tz),
            "last_fire": iso(row.last_at), "last_run": row.last_run})
    return out


def pause(tx: Tx, name: str, paused: bool) -> bool:
    """Pause a schedule, or resume it from now on (what fell due meanwhile is not fired)."""
    next_at = None
    if not paused:
        found = next((r for r in tx.schedules() if r.name == name), None)
        if found is None:
            return False
        next_at = next_fire(codec.loads(found.spec), tx.now())
    return tx.pause_schedule(name, paused, next_at)
