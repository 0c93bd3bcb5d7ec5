"""Definitions `waypost check` must refuse: the CLI tests check its exit code, and that
`waypost start` refuses to start them."""

from __future__ import annotations

import waypost as wp


@wp.task(timeout=5, destructive=True)
def drop_table(name: str) -> None:
    return None


@wp.flow()
def cleanup(name: str) -> None:
    drop_table(name)
