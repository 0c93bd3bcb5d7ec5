"""Schedules (both stores), swept at chosen moments of the database's clock: after a gap
with no worker the missed-fire policy holds (once: the latest due time, late; skip:
nothing until the next), a due time fires once however often it is looked at, and a
paused schedule fires nothing until it is resumed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import waypost as wp
from waypost.runtime.core import schedules
from waypost.vocabulary.task import registered_tasks

#: Far apart, so the workers of other tests (which store every schedule this process has)
#: never see one of these fall due.
DAY = 3650 * 86_400.0


@wp.task
def report(day: str, region: str = "eu") -> str:
    return f"{region} {day}"


@wp.flow(every=timedelta(seconds=DAY), name="tests.sched:catch_up")
def catch_up(scheduled_at: str) -> str:
    return report(scheduled_at)


@wp.flow(every=timedelta(seconds=DAY), missed="skip", name="tests.sched:skipper")
def skipper(scheduled_at: str, region: str = "us") -> str:
    return report(scheduled_at, region)


@wp.flow(schedule="0 9 1 1 *", tz="Europe/Paris", name="tests.sched:mornings")
def mornings(region: str = "fr") -> str:
    return report("today", region)


@wp.flow(name="tests.sched:retired")
def retired() -> str:
    return report("never")


def _register(engine: wp.Engine, names: set[str] | None = None) -> dict[str, dict[str, Any]]:
    wanted = names or {catch_up.name, skipper.name}
    found = [s for s in schedules.scheduled(registered_tasks()) if s.name in wanted]
    engine._store().transact(lambda tx: schedules.register(tx, found))
    return {s["name"]: s for s in engine.schedules()}


def _sweep(engine: wp.Engine, now: float) -> int:
    return int(engine._store().transact(lambda tx: schedules.sweep(engine._advancer, tx, now)))


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _fires(engine: wp.Engine, flow: wp.Flow[Any, Any]) -> list[str]:
    runs = engine.runs(flow=flow.name, limit=100)
    return sorted(engine.show(r["id"])["input"]["scheduled_at"] for r in runs)


def test_after_a_gap_once_fires_the_latest_due_time_and_skip_fires_nothing(
        engine: wp.Engine) -> None:
    listed = _register(engine)
    first = _at(listed[catch_up.name]["next_fire"])
    assert _at(listed[skipper.name]["next_fire"]) == first and first % DAY == 0
    # three days with no worker, and the first one back comes an hour after a due time
    assert _sweep(engine, first + 3 * DAY + 3600) == 1
    assert _fires(engine, catch_up) == [datetime.fromtimestamp(
        first + 3 * DAY, tz=UTC).isoformat(timespec="milliseconds")]
    assert _fires(engine, skipper) == []
    listed = {s["name"]: s for s in engine.schedules()}
    for name in (catch_up.name, skipper.name):
        assert _at(listed[name]["next_fire"]) == first + 4 * DAY
    assert listed[catch_up.name]["last_fire"] == _fires(engine, catch_up)[0]
    assert listed[skipper.name]["last_fire"] is None
    # on time, both fire; looked at again, nothing more
    assert _sweep(engine, first + 4 * DAY + 5) == 2
    assert _sweep(engine, first + 4 * DAY + 5) == 0
    assert len(_fires(engine, catch_up)) == 2 and len(_fires(engine, skipper)) == 1
    with engine.serving():
        run = engine.runs(flow=skipper.name)[0]["id"]
        assert engine.result(run, timeout=30).startswith("us ")  # the default, and the time


def test_a_due_time_fires_once_even_when_looked_at_again(engine: wp.Engine) -> None:
    listed = _register(engine, {catch_up.name})
    due = _at(listed[catch_up.name]["next_fire"])
    assert _sweep(engine, due + 1) == 1
    # a second look at the same due time (as a worker that read it before the first
    # moved it on would): the fire's key finds the run, and starts none
    engine._store().transact(lambda tx: tx.advance_schedule(catch_up.name, due + DAY, due,
                                                            None, None))
    assert _sweep(engine, due + 1) == 0
    assert len(_fires(engine, catch_up)) == 1


def test_a_paused_schedule_fires_nothing_until_resumed(engine: wp.Engine) -> None:
    listed = _register(engine)
    due = _at(listed[catch_up.name]["next_fire"])
    assert engine.pause_schedule("catch_up") == catch_up.name  # the part after the module
    paused = {s["name"]: s for s in engine.schedules()}[catch_up.name]
    assert paused["paused"] is True and paused["next_fire"] is None
    assert _sweep(engine, due + 1) == 1  # the skipper only
    assert _fires(engine, catch_up) == []
    engine.resume_schedule(catch_up.name)
    resumed = {s["name"]: s for s in engine.schedules()}[catch_up.name]
    assert resumed["paused"] is False and _at(resumed["next_fire"]) == due
    with pytest.raises(wp.UnknownTargetError, match="no schedule"):
        engine.pause_schedule("nobody")


def test_a_cron_schedule_keeps_its_zone(engine: wp.Engine) -> None:
    listed = _register(engine, {mornings.name})[mornings.name]
    assert listed["when"] == "0 9 1 1 * (Europe/Paris)"
    local = datetime.fromisoformat(listed["next_fire_local"])
    assert (local.month, local.day, local.hour, local.minute) == (1, 1, 9, 0)
    assert local.utcoffset() == timedelta(hours=1)  # CET in January
    assert _at(listed["next_fire"]) == local.timestamp()
    # the same code registered again keeps its next fire
    assert _register(engine, {mornings.name})[mornings.name]["next_fire"] == \
        listed["next_fire"]


def test_a_schedule_taken_out_of_the_code_stops_firing(engine: wp.Engine) -> None:
    """A flow that had a schedule (stored by an older version of the code) and has none
    now: the first worker with the new code removes it."""
    _register(engine, {catch_up.name})
    fingerprint = catch_up.compile()[0]
    engine._store().transact(lambda tx: tx.put_schedule(retired.name, fingerprint,
                                                        '{"every": 60.0}', 60.0))
    assert {s["name"] for s in engine.schedules()} == {catch_up.name, retired.name}
    _register(engine, {catch_up.name})
    assert {s["name"] for s in engine.schedules()} == {catch_up.name}


def test_schedules_that_could_never_fire_are_refused_when_declared() -> None:
    def declare(**options: Any) -> None:
        @wp.flow(**options)
        def f(scheduled_at: str = "") -> str:
            return report(scheduled_at)

    with pytest.raises(wp.DefinitionError, match="not a cron expression"):
        declare(schedule="every monday")
    with pytest.raises(wp.DefinitionError, match="unknown time zone"):
        declare(schedule="0 9 * * *", tz="Mars/Olympus")
    with pytest.raises(wp.DefinitionError, match="not both"):
        declare(schedule="0 9 * * *", every=60)
    with pytest.raises(wp.DefinitionError, match="missed is one of"):
        declare(every=60, missed="twice")
    with pytest.raises(wp.DefinitionError, match="at least one second"):
        declare(every=timedelta(0))
    with pytest.raises(wp.DefinitionError, match="need defaults"):
        @wp.flow(every=60)
        def g(region: str) -> str:
            return report(region)


def test_no_schedule_a_test_process_has_falls_due_soon() -> None:
    """Every in-process worker stores and fires the schedules of the code its process has:
    a test module declaring a fast schedule would start runs in other tests' stores. Fast
    ones belong in modules that only worker subprocesses load (tests/flows/gap.py)."""
    from waypost.registry import registry
    from waypost.vocabulary.schedule import next_fire

    now = datetime.now(UTC).timestamp()
    soon = [d.name for d in registry.schedules() if next_fire(d.schedule, now) < now + DAY / 3650]
    assert soon == []
