"""Retry policy: how many attempts a step gets and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff. Jitter only ever lengthens a delay (by up to 25%), so the
    declared delay is a floor a user can rely on while retries of many steps spread out."""

    initial: float = 1.0
    factor: float = 2.0
    max: float = 60.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.initial < 0 or self.factor < 1 or self.max < 0:
            raise ValueError("Backoff needs initial >= 0, factor >= 1 and max >= 0")

    def base_delay(self, failed_attempts: int) -> float:
        """The declared delay after the n-th failed attempt (n >= 1)."""
        delay = self.initial
        for _ in range(failed_attempts - 1):  # stops at the cap, so it can never overflow
            if delay >= self.max:
                break
            delay *= self.factor
        return float(min(delay, self.max))

    def delay(self, failed_attempts: int, rand: float | None = None) -> float:
        base = self.base_delay(failed_attempts)
        if not self.jitter:
            return base
        r = random.random() if rand is None else rand
        return base * (1.0 + 0.25 * r)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Backoff:
        return cls(**data)
