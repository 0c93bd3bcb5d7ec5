"""Fixtures of the integration tests: an engine on each store and a scratch directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import waypost as wp

from .helpers import join_listeners


@pytest.fixture
def engine(db_url: str) -> Iterator[wp.Engine]:
    eng = wp.Engine(db_url, poll=0.05)
    try:
        yield eng
    finally:
        eng.close()
        join_listeners()


@pytest.fixture
def workdir(tmp_path: Path) -> str:
    path = tmp_path / "work"
    path.mkdir()
    return str(path)

