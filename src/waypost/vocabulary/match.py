"""What a wait for an event matches on: payload fields, each equal to a value.

A match is {path: value}; a path names a payload field, dots reaching into objects
(`customer.id`). Values are compared as canonical JSON (so 1 and 1.0 differ, as they do
in JSON). A wait is stored by its paths and a digest of its values, and an emitted event
computes the digest of its own values at those paths: finding the waits an event
satisfies is an index lookup, however many wait.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .. import codec

_PATH = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
#: What `at_path` returns for a path the value does not have.
MISSING = object()


def check_paths(match: dict[str, Any], where: str, error: type[Exception]) -> None:
    for path in match:
        if not isinstance(path, str) or not _PATH.fullmatch(path) or len(path) > 200:
            raise error(f"{where}: a match's keys are payload fields, dot-separated words "
                        f"(customer.id), not {path!r:.80}")


def digest(values: list[Any]) -> str:
    return hashlib.sha256(codec.dumps(values).encode()).hexdigest()[:32]


def shape(match: dict[str, Any]) -> tuple[str, str]:
    """(fields, digest) under which a wait with this match is stored."""
    fields = sorted(match)
    return ",".join(fields), digest([match[f] for f in fields])


def at_path(value: Any, path: str) -> Any:
    """The value at a dotted path of nested objects, or MISSING."""
    for word in path.split("."):
        if not isinstance(value, dict) or word not in value:
            return MISSING
        value = value[word]
    return value


def payload_digest(payload: Any, fields: str) -> str | None:
    """The digest an event's payload has for these fields; None if one is missing."""
    values = [at_path(payload, path) for path in fields.split(",")] if fields else []
    if any(v is MISSING for v in values):
        return None
    return digest(values)


def satisfies(payload: Any, match: dict[str, Any]) -> bool:
    fields, wanted = shape(match)
    return payload_digest(payload, fields) == wanted
