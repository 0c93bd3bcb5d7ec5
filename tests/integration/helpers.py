"""Helpers for reading `engine.show()` views."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def step_of(view: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in view["steps"] if s["name"] == name]
    assert len(found) == 1, f"expected one step {name!r}, got {[s['name'] for s in view['steps']]}"
    return found[0]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
