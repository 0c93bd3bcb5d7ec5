"""Operators' hold on schedules: list them, pause one, resume it."""

from __future__ import annotations

from typing import Any

from ...errors import InputError, UnknownTargetError
from ..core import schedules
from .base import EngineBase


class Schedules(EngineBase):
    def schedules(self) -> list[dict[str, Any]]:
        """Every stored schedule with its next fire (as `waypost schedules --json`). A
        worker whose code has a scheduled flow stores its schedule when it starts."""
        return list(self._store().read(schedules.listing))

    def pause_schedule(self, name: str) -> str:
        """Stop a schedule firing until `resume_schedule`; returns its full name."""
        return self._pause(name, True)

    def resume_schedule(self, name: str) -> str:
        """Fire a paused schedule again, from its next due time after now: what fell due
        while it was paused is not fired."""
        return self._pause(name, False)

    def _pause(self, name: str, paused: bool) -> str:
        full = self._schedule_named(name)
        if not self._transact(lambda tx: schedules.pause(tx, full, paused)):
            raise UnknownTargetError(f"no schedule {name!r}")
        return full

    def _schedule_named(self, name: str) -> str:
        """A schedule by its full name, or the part after the module (`nightly` for
        `app.jobs:nightly`) when only one has it."""
        names: list[str] = [str(s["name"]) for s in self.schedules()]
        if name in names:
            return name
        found = [n for n in names if n.rpartition(":")[2] == name]
        if len(found) == 1:
            return found[0]
        if found:
            raise InputError(f"{name!r} names several schedules: {', '.join(found)}")
        known = ", ".join(names) or "none: a worker stores its code's when it starts"
        raise UnknownTargetError(f"no schedule {name!r} (known: {known})")
