"""Rates written the way people say them: "200/minute", "20/s", "5/day"."""

from __future__ import annotations

from datetime import timedelta

from .errors import DefinitionError

_PERIODS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}


def parse_rate(text: str, what: str = "a rate") -> tuple[int, float]:
    """`"200/minute"` -> (200, 60.0): a count per period of seconds."""
    count, sep, unit = str(text).partition("/")
    try:
        n = int(count.strip())
    except ValueError:
        n = -1
    period = _PERIODS.get(unit.strip().lower())
    if not sep or n < 0 or period is None:
        raise DefinitionError(f"{what} is written like \"200/minute\" (count / second, minute, "
                              f"hour or day), not {text!r}")
    return n, period


def seconds(value: timedelta | float | None, what: str) -> float | None:
    """A duration given as a timedelta or seconds; it must be positive."""
    if value is None:
        return None
    s = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if s <= 0:
        raise DefinitionError(f"{what} must be a positive duration")
    return s
