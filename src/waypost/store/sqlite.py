"""SQLite: one file, WAL, durable commits, several processes on one machine."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import StoreError
from .base import Store
from .sql import SqlTx

# Primary result codes (the low byte of an extended one): SQLITE_BUSY, SQLITE_LOCKED,
# SQLITE_FULL.
_TRANSIENT_CODES = frozenset({5, 6, 13})
_SYNC = {"full": "FULL", "normal": "NORMAL", "off": "OFF", "extra": "EXTRA"}


class SqliteTx(SqlTx):
    # Unix seconds with millisecond resolution from SQLite's own clock.
    NOW = "((julianday('now') - 2440587.5) * 86400.0)"
    RANDOM = "lower(hex(randomblob(16)))"


class SqliteStore(Store):
    dialect = "sqlite"
    tx_class = SqliteTx

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc:
            path = parts.netloc + "/" + path
        if not path:
            raise StoreError(f"no file in SQLite URL {url!r}; use sqlite:///path/to/file.db")
        self.path = path
        options = parse_qs(parts.query)
        sync = options.get("synchronous", ["full"])[0].lower()
        if sync not in _SYNC:
            raise StoreError(f"synchronous={sync!r}: use one of {', '.join(_SYNC)}")
        self.synchronous = _SYNC[sync]
        parent = Path(path).parent
        if not parent.is_dir():
            raise StoreError(f"cannot open SQLite database {path!r}: no directory {parent}")
        if not create and not Path(path).is_file():
            raise StoreError(f"no SQLite database at {path!r} (a worker or `waypost start` "
                             "creates it)")
        self._connection: sqlite3.Connection | None = None
        self._connect()

    def _connect(self) -> None:
        # Switching a new file to WAL needs a moment alone with it, and SQLite does not
        # always call its busy handler for that: processes opening one fresh file at once
        # (two workers started together) can see "locked" here. That is transient.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0,
                                       check_same_thread=False)
                conn.execute("PRAGMA busy_timeout = 30000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {self.synchronous}")
                # Off by default in SQLite; on, the schema's references hold as on PostgreSQL.
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if busy and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise StoreError(f"cannot open SQLite database {self.path!r}: {exc}") from exc
            self._connection = conn
            return

    def _conn(self) -> Any:
        assert self._connection is not None
        return self._connection

    def _begin(self, write: bool) -> None:
        self._conn().execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def _commit(self) -> None:
        self._conn().execute("COMMIT")

    def _rollback(self) -> None:
        conn = self._conn()
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    driver_errors = (sqlite3.Error,)

    def _is_transient(self, exc: BaseException) -> bool:
        # Busy and locked pass once the other writer commits; a full disk once someone frees
        # space (an outage like any other: workers pause, commands give up after their
        # patience). Everything else SQLite says would be said again.
        if not isinstance(exc, sqlite3.Error):
            return False
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _TRANSIENT_CODES
        text = str(exc).lower()  # raised by Python, or by a fault injected in a test
        return isinstance(exc, sqlite3.OperationalError) and any(
            word in text for word in ("locked", "busy", "disk is full"))

    def _reconnect(self) -> None:
        """SQLite connections do not drop; a busy database only needs another try."""

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
