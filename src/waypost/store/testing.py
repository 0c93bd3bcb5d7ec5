"""Faults a test asks of a real worker process through its environment.

A crash test runs workers as separate processes (`waypost worker`), so it cannot patch
them; it sets a variable before starting one instead. Only `open_store` looks, once per
store: nothing here is on a transaction's path unless a test asked for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from .records import ClaimedStep, HeldStep
from .sql import SqlTx

#: A path: the first transaction that records an outcome and claims new work creates it
#: and sleeps, so a test can SIGSTOP the worker while it is inside that transaction.
STALL_ENV = "WAYPOST_TEST_STALL_IN_COMMIT"


def faulty(tx_class: type[SqlTx]) -> type[SqlTx]:
    """`tx_class`, with the faults the environment asks for (itself if none)."""
    found = os.environ.get(STALL_ENV)
    if not found:
        return tx_class
    marker: str = found

    class StallingTx(tx_class):  # type: ignore[valid-type,misc]
        recorded = False

        def succeed_many(self, done: Sequence[tuple[int, str, str]]) -> list[HeldStep | None]:
            held: list[HeldStep | None] = super().succeed_many(done)
            self.recorded = self.recorded or any(h is not None for h in held)
            return held

        def claim(self, *args: Any, **kwargs: Any) -> list[ClaimedStep]:
            claimed: list[ClaimedStep] = super().claim(*args, **kwargs)
            if claimed and self.recorded and not os.path.exists(marker):
                with open(marker, "w") as file:
                    file.write(str(os.getpid()))
                time.sleep(2.0)
            return claimed

    return StallingTx
