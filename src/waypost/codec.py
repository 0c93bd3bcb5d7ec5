"""JSON at every boundary: payloads in the store are JSON text, never pickle.

A database row must never be able to execute code, so only plain JSON types cross into
the store. Canonical encoding (sorted keys, no spaces) makes checksums stable.

Nesting is capped, because Python decodes JSON recursively: a value nested about a
thousand deep cannot be decoded in a worker thread at all, so once stored it would crash
every worker that reads it. What a user hands in (a run's input, a task's output, a JSON
option of the CLI) may be `MAX_DEPTH` deep; what waypost itself stores around such values
(a step's `{"args": [...]}`, a flow's output template) has headroom up to `STORED_DEPTH`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .errors import InputError

#: The deepest a user's value may nest (`[[1]]` is 2 deep; a scalar is 0).
MAX_DEPTH = 100
#: The deepest any stored payload may nest, wrappers included; far below what breaks decoding.
STORED_DEPTH = 2 * MAX_DEPTH
#: The longest idempotency key, in bytes of UTF-8. PostgreSQL cannot index a value much
#: over 2.7 KB (a btree row must fit a third of a page), and one limit holds on both stores.
MAX_KEY_BYTES = 1024

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting(text: str) -> int:
    """How deep the JSON `text` nests, found without decoding it (which recurses)."""
    deepest = level = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            level += 1
            deepest = max(deepest, level)
        elif token in "]}":
            level -= 1
    return deepest


def _too_deep(text: str, limit: int) -> bool:
    # No more brackets than the limit means no deeper than it: the common case costs two
    # scans at C speed, and only a payload with many brackets is tokenised.
    return text.count("[") + text.count("{") > limit and nesting(text) > limit


def dumps(value: Any, max_depth: int = STORED_DEPTH) -> str:
    """Canonical JSON; TypeError for what is not JSON or nests deeper than `max_depth`."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise TypeError(f"value is not JSON-serialisable: nested deeper than {max_depth} "
                        "levels") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"value is not JSON-serialisable: {exc}") from exc
    if _too_deep(text, max_depth):
        raise TypeError(f"value is not JSON-serialisable: nested deeper than {max_depth} "
                        "levels")
    return text


def loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"stored JSON nests too deeply to decode ({nesting(text)} levels)") \
            from None


def checksum(text: str) -> str:
    """`sha256:` and the full hex digest of canonical JSON text (what `dumps` makes)."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def same_checksum(stored: str, text: str) -> bool:
    """Whether `stored` is the checksum of `text`. Runs started before the full digest was
    stored kept its first 32 hex digits under the same label; they match by that prefix, so
    a repeat start of such a run with its idempotency key is not a false conflict."""
    full = checksum(text)
    return stored == full or (len(stored) == len("sha256:") + 32 and full.startswith(stored))


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
