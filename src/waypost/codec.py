"""JSON at every boundary: payloads in the store are JSON text, never pickle.

A database row must never be able to execute code, so only plain JSON types cross into
the store. Canonical encoding (sorted keys, no spaces) makes checksums stable.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import InputError

#: The longest idempotency key, in bytes of UTF-8. PostgreSQL cannot index a value much
#: over 2.7 KB (a btree row must fit a third of a page), and one limit holds on both stores.
MAX_KEY_BYTES = 1024


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value is not JSON-serialisable: {exc}") from exc


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def checksum(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def check_key(key: str) -> str:
    """Refuse an idempotency key a store cannot keep exactly, before anything is written."""
    if not isinstance(key, str):
        raise InputError(f"an idempotency key is a string, not {type(key).__name__}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InputError("an idempotency key must be valid UTF-8 text") from None
    if size > MAX_KEY_BYTES:
        raise InputError(f"an idempotency key is at most {MAX_KEY_BYTES} bytes of UTF-8, "
                         f"not {size}")
    if "\0" in key:
        raise InputError("an idempotency key cannot contain a NUL character")
    return key
