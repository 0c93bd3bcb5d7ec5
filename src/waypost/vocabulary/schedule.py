"""When a schedule fires: a cron expression in a time zone (croniter reads it, with a sixth
field for seconds), or every so long, counted from the Unix epoch so every worker and
every restart agree on the due times.

After a stretch with no worker, at most one fire catches up. The latest due time is
fired if it is on time (less than a minute late, or half the period for shorter
periods); otherwise `missed` says: "once" fires it anyway, late, "skip" fires nothing
and waits for the next due time. Earlier due times of the stretch never fire.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import DefinitionError

MISSED = ("once", "skip")
#: A due time later than this (or half the period, if shorter) is missed.
GRACE = 60.0


def spec_of(cron: str | None, every: timedelta | float | None, tz: str | None,
            missed: str, where: str) -> dict[str, Any]:
    """The stored form of a schedule; DefinitionError for one that could never fire."""
    if (cron is None) == (every is None):
        raise DefinitionError(f"{where}: a schedule is schedule= (cron) or every=, not both")
    if missed not in MISSED:
        raise DefinitionError(f"{where}: missed is one of {', '.join(MISSED)}, not {missed!r}")
    zone = tz or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DefinitionError(f"{where}: unknown time zone {zone!r}") from None
    if cron is not None:
        from croniter import croniter

        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise DefinitionError(f"{where}: {cron!r} is not a cron expression (minute hour "
                                  "day-of-month month day-of-week, and seconds as a sixth "
                                  "field)")
        return {"cron": cron, "tz": zone, "missed": missed}
    seconds = every.total_seconds() if isinstance(every, timedelta) else every
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 1:
        raise DefinitionError(f"{where}: every= is a timedelta (or seconds) of at least one "
                              f"second, not {every!r}")
    if tz is not None:
        raise DefinitionError(f"{where}: every= counts from the epoch; tz= is for cron")
    return {"every": float(seconds), "tz": zone, "missed": missed}


def next_fire(spec: dict[str, Any], after: float) -> float:
    """The first due time strictly after `after` (Unix seconds)."""
    if "every" in spec:
        every = float(spec["every"])
        return (math.floor(after / every) + 1) * every
    from croniter import croniter

    start = datetime.fromtimestamp(after, ZoneInfo(spec["tz"]))
    return float(croniter(spec["cron"], start).get_next(float))


def latest_due(spec: dict[str, Any], first: float, now: float) -> float:
    """The last due time at or before `now`, from `first` (itself due) on."""
    if "every" in spec:
        every = float(spec["every"])
        return max(first, math.floor(now / every) * every)
    from croniter import croniter

    start = datetime.fromtimestamp(now, ZoneInfo(spec["tz"])) + timedelta(microseconds=1)
    return max(first, float(croniter(spec["cron"], start).get_prev(float)))


def on_time(due: float, following: float, now: float) -> bool:
    return now - due <= min(GRACE, (following - due) / 2)


def describe(spec: dict[str, Any]) -> str:
    if "every" in spec:
        return f"every {timedelta(seconds=spec['every'])}"
    return f"{spec['cron']} ({spec['tz']})"


def local_iso(ts: float | None, tz: str) -> str | None:
    if ts is None:
        return None
    zone = UTC if tz == "UTC" else ZoneInfo(tz)
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")
