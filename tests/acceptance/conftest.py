"""Fixtures of the acceptance tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._support import Workers


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Real `waypost worker` processes on this test's store, all reaped at the end."""
    procs = Workers(db_url, tmp_path / "ledger.jsonl", tmp_path)
    try:
        yield procs
    finally:
        procs.close()
