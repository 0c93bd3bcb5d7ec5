"""Every behaviour test runs on both stores: a fresh SQLite file and a fresh PostgreSQL
schema per test, so tests never see each other's rows and can run in parallel."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

PG_BASE = os.environ.get("WAYPOST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_schema_url() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{PG_BASE}?schema={schema}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL of a store no other test uses."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'waypost.db'}"
    else:
        yield from pg_schema_url()
