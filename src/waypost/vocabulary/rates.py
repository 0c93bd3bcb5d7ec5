"""Rates and durations written the way people say them: "200/minute", "20/s", 5 seconds."""

from __future__ import annotations

import re
from datetime import timedelta

from ..errors import DefinitionError

_UNITS = {
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-zA-Z]+)\s*$")


def parse_rate(text: str, where: str = "rate") -> tuple[int, float]:
    """'200/minute' -> (200, 60.0): how many attempts may start per how many seconds."""
    match = _RATE.match(text) if isinstance(text, str) else None
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None or int(match.group(1)) < 1:
        raise DefinitionError(
            f"{where} {text!r} is not a rate: write COUNT/UNIT with a whole COUNT >= 1 and "
            "UNIT one of second, minute, hour, day (or s, min, h, d), e.g. '20/s', "
            "'200/minute', '1000/hour'")
    return int(match.group(1)), unit


def seconds(value: timedelta | float | None, what: str) -> float | None:
    """A duration given as a timedelta or seconds; it must be positive."""
    if value is None:
        return None
    s = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if s <= 0:
        raise DefinitionError(f"{what} must be a positive duration")
    return s
