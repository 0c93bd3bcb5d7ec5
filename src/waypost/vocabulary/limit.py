"""`wp.limit`: a named budget shared by every worker on one store.

A limit protects something outside waypost (an API, a database) from the tasks that call
it: at most `rate` attempts may start per period, and at most `concurrency` may run at
once. Tasks name the limits they use (`@wp.task(uses=["payments-api"])`); workers claim
their steps only while the limit allows, so a step waiting for a limit stays `ready` and
holds no thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import DefinitionError
from ..registry import registry
from .rates import parse_rate

_NAME = re.compile(r"^[^\s]{1,200}$")


class Limit:
    """A declared limit; `wp.limit(...)` makes one. `rate_count` attempts may start per
    `rate_period` seconds (a sliding window), `concurrency` may run at once."""

    __slots__ = ("concurrency", "name", "rate", "rate_count", "rate_period")

    def __init__(self, name: str, *, rate: str | None = None,
                 concurrency: int | None = None) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise DefinitionError(f"a limit's name must be a non-empty string without spaces, "
                                  f"not {name!r}")
        if rate is None and concurrency is None:
            raise DefinitionError(f"limit {name!r} needs a rate, a concurrency, or both, e.g. "
                                  f"wp.limit({name!r}, rate='20/s', concurrency=10)")
        self.rate_count: int | None = None
        self.rate_period: float | None = None
        if rate is not None:
            self.rate_count, self.rate_period = parse_rate(rate, f"limit {name!r}: rate")
        if concurrency is not None and (isinstance(concurrency, bool) or
                                        not isinstance(concurrency, int) or concurrency < 1):
            raise DefinitionError(f"limit {name!r}: concurrency must be a whole number >= 1, "
                                  f"not {concurrency!r}")
        self.name = name
        self.rate = rate.strip() if rate is not None else None
        self.concurrency = concurrency

    def describe(self) -> str:
        parts = [f"rate {self.rate}"] if self.rate else []
        parts += [f"concurrency {self.concurrency}"] if self.concurrency else []
        return ", ".join(parts)

    def _key(self) -> tuple[str, int | None, float | None, int | None]:
        return self.name, self.rate_count, self.rate_period, self.concurrency

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limit) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"<limit {self.name}: {self.describe()}>"


def limit(name: str, *, rate: str | None = None, concurrency: int | None = None) -> Limit:
    """Declare a limit shared by every worker on the store: at most `rate` attempts start
    per period ('20/s', '200/minute', '1000/hour', '5/day') and at most `concurrency` run
    at once. Declare it before the tasks that use it. Declaring the same name again with
    the same settings returns the same limit; with other settings it is refused."""
    new = Limit(name, rate=rate, concurrency=concurrency)
    old = _declared(name)
    if old is not None:
        if old != new:
            raise DefinitionError(f"limit {name!r} is already declared ({old.describe()}); "
                                  f"it cannot also be {new.describe()}")
        return old
    registry.declare_limit(new)
    return new


def _declared(name: str) -> Limit | None:
    found = registry.limit(name)
    return found if isinstance(found, Limit) else None


def resolve_uses(task: str, uses: Iterable[str | Limit] | str | Limit | None) -> list[Limit]:
    """The declared limits a task names in `uses=`, in order, without repeats."""
    if uses is None:
        return []
    items = [uses] if isinstance(uses, str | Limit) else list(uses)
    found: dict[str, Limit] = {}
    for item in items:
        name = item.name if isinstance(item, Limit) else item
        if not isinstance(name, str):
            raise DefinitionError(f"task {task}: uses= takes limit names, not {item!r}")
        declared = _declared(name)
        if declared is None:
            raise DefinitionError(
                f"task {task} uses limit {name!r}, which is not declared: call "
                f"wp.limit({name!r}, rate=..., concurrency=...) before defining the task")
        found[name] = declared
    return list(found.values())
