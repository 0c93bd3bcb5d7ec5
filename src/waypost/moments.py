"""Times of day, as `wp.sleep_until` and a machine state's `until=` take them: "09:00
Europe/Paris" is the next such moment in that zone ("09:00" alone is UTC). Shared by the
front-ends, so a flow and a machine read the same text the same way; and the one way a
stored time is shown (`iso`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import DefinitionError

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s+(\S+))?$")


def time_of_day(when: Any, what: str) -> dict[str, str] | None:
    """`{"at": "HH:MM:SS", "tz": zone}` for a time-of-day text; None for what is not one
    (the caller says what else it takes); DefinitionError for a bad hour or zone."""
    match = _CLOCK.match(str(when).strip())
    if match is None:
        return None
    hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    zone = match[4] or "UTC"
    if hour > 23 or minute > 59 or second > 59:
        raise DefinitionError(f"{what}: {when!r} is not a time of day")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DefinitionError(f"{what}: unknown time zone {zone!r}") from None
    return {"at": f"{hour:02d}:{minute:02d}:{second:02d}", "tz": zone}


def next_time_of_day(at: str, tz: str, now: float) -> float:
    """The first moment after `now` (epoch seconds) whose local time in `tz` is `at`."""
    zone = ZoneInfo(tz)
    hour, minute, second = (int(x) for x in at.split(":"))
    local = datetime.fromtimestamp(now, zone)
    for days in range(3):  # today, or tomorrow (a DST gap may skip one)
        day = local + timedelta(days=days)
        moment = day.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if moment.timestamp() > now:
            return moment.timestamp()
    raise AssertionError("a time of day always comes within two days")


def iso(ts: float | None) -> str | None:
    """A time from the database's clock (Unix seconds) as ISO 8601 UTC, to the millisecond."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
