"""The runtime's typed view of what this process's code declares (waypost/registry.py),
for what only the seam can type: the drivers the front-ends load stored definitions into."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from ...registry import registry
from .driver import Driver


def register_kind(kind: str, load: Callable[[str], Driver]) -> None:
    """The one way a loader is declared, so every loader makes a `Driver`, which is what
    lets `load_driver` say so."""
    registry.declare_loader(kind, load)


def load_driver(kind: str, body: str) -> Driver:
    return cast(Driver, registry.load(kind, body))

