"""Topic names and patterns, and an event as a producer emits it.

A topic is dot-separated words (`order.placed`, `billing.invoice-sent`). A pattern is a
topic whose words may be `*` (exactly one word) or `**` (any number of words, none
included): `order.*` takes `order.placed` but not `order.item.added`; `order.**` takes
both, and `order` itself.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .. import codec
from ..errors import DefinitionError, InputError

_WORD = r"[A-Za-z0-9_-]+"
_TOPIC = re.compile(rf"{_WORD}(\.{_WORD})*")
#: Topics waypost itself may publish on one day; nobody else emits or names them.
RESERVED = "waypost."


def check_topic(topic: Any) -> str:
    if not isinstance(topic, str) or not _TOPIC.fullmatch(topic) or len(topic) > 200:
        raise InputError(f"a topic is dot-separated words of letters, digits, _ and - (at "
                         f"most 200 characters), not {topic!r:.80}")
    if topic.startswith(RESERVED):
        raise InputError(f"topics starting {RESERVED!r} are waypost's own; nothing was "
                         f"emitted on {topic!r}")
    return topic


def check_pattern(pattern: Any, where: str) -> str:
    words: list[str] = pattern.split(".") if isinstance(pattern, str) else []
    if not words or not all(w in ("*", "**") or re.fullmatch(_WORD, w) for w in words):
        raise DefinitionError(f"{where}: a topic pattern is dot-separated words, `*` (one "
                              f"word) or `**` (any number), not {pattern!r:.80}")
    if pattern.startswith(RESERVED):
        raise DefinitionError(f"{where}: topics starting {RESERVED!r} are waypost's own")
    return str(pattern)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = []
    for word in pattern.split("."):
        if word == "**":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    text = r"\.".join(parts)
    # `a.**` must take `a` too: the dot before an empty `**` is optional.
    text = text.replace(r"\.(?:[^.]+(?:\.[^.]+)*)?", r"(?:\.[^.]+(?:\.[^.]+)*)?")
    return re.compile(text)


def matches(pattern: str, topic: str) -> bool:
    return _compiled(pattern).fullmatch(topic) is not None


@dataclass(frozen=True)
class Emitted:
    """An event ready to store: its payload is JSON text already, its id chosen (a
    retried transaction stores it once)."""

    topic: str
    payload: str
    key: str | None
    id: str


def emitted(topic: str, payload: Any = None, key: str | None = None,
            id: str | None = None) -> Emitted:
    """Check an event where it is emitted, so a bad one fails its producer, not a worker."""
    check_topic(topic)
    if key is not None:
        if not isinstance(key, str):
            raise InputError(f"an event's key is a string, not {type(key).__name__}")
        codec.check_key(key)
    if id is not None:
        if not isinstance(id, str):
            raise InputError(f"an event's id is a string, not {type(id).__name__}")
        codec.check_key(id)
    try:
        text = codec.dumps(payload, codec.MAX_DEPTH)
    except TypeError as exc:
        raise InputError(f"the payload of an event on {topic!r} must be JSON: {exc}") from None
    return Emitted(topic, text, key, id or uuid.uuid4().hex)
