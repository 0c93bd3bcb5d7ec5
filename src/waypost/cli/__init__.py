"""The `waypost` command: one module per group of commands, put together here."""

from __future__ import annotations

from . import demo, design, events, operators, runs, schedules, workers
from .group import db_everywhere, main

__all__ = ["main"]

for _module in (runs, events, operators, schedules, workers, design, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)
db_everywhere(main)
