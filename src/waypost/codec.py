"""JSON at every boundary: payloads in the store are JSON text, never pickle.

A database row must never be able to execute code, so only plain JSON types cross into
the store. Canonical encoding (sorted keys, no spaces) makes checksums stable.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value is not JSON-serialisable: {exc}") from exc


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def checksum(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]
