"""Persistence: one set of domain verbs, a SQLite and a PostgreSQL dialect."""

from __future__ import annotations

from ..errors import StoreError
from .base import Store

DEFAULT_URL = "sqlite:///waypost.db"


def open_store(url: str, *, create: bool = True) -> Store:
    """A store for `url` (sqlite:///file.db or postgresql://...), schema up to date.
    `create=False` refuses a SQLite file that does not exist yet: a command that only reads
    (or acts on an existing run) must not leave an empty database behind a mistyped path."""
    if url.startswith("sqlite:"):
        from .sqlite import SqliteStore

        store: Store = SqliteStore(url, create=create)
    elif url.startswith(("postgresql:", "postgres:")):
        from .postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StoreError(f"unsupported database URL {url!r}: use sqlite:///file.db or "
                         "postgresql://user@host/db")
    from .testing import faulty

    store.tx_class = faulty(store.tx_class)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


__all__ = ["DEFAULT_URL", "Store", "open_store"]
