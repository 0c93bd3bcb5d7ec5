"""What the runtime keeps between transactions: each run's head and each definition's
driver.

A run's definition and input never change once it is created, and a stored definition
never changes under its fingerprint, so both are cached (bounded) and moving a run costs
no read of either. The caches are the only state an `Advancer` has; an engine's threads
share them.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ... import codec
from ...errors import UnknownTargetError
from ...store.protocol import Tx
from ..seam import Driver, load_driver


def new_run_id() -> str:
    """Time-ordered, so listings sort by age and ids can be typed by prefix."""
    return f"{int(time.time() * 1000):012x}{os.urandom(6).hex()}"


@dataclass
class Head:
    """What a run was started with: its definition and its input (decoded when first
    needed)."""

    fingerprint: str
    input: str
    #: The run whose step started it (a child run), if any.
    parent: str | None = None
    #: The key of the lane a keyed delivery holds until it ends (deliveries.py).
    lane: str | None = None
    params: Any = None


class Heads:
    def __init__(self, cache_size: int = 10_000) -> None:
        self._drivers: dict[str, Driver] = {}
        self._runs: OrderedDict[str, Head] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        #: Definitions known to be committed in this store; the caller adds a fingerprint
        #: once the transaction that stored it has committed.
        self.stored: set[str] = set()

    def driver(self, tx: Tx, fingerprint: str) -> Driver:
        driver = self._drivers.get(fingerprint)
        if driver is None:
            found = tx.definition(fingerprint)
            if found is None:
                raise UnknownTargetError(f"no definition {fingerprint} in the store")
            driver = self._drivers[fingerprint] = load_driver(*found)
        return driver

    def keep_driver(self, fingerprint: str, driver: Driver) -> None:
        """A driver compiled from this process's code: the same as the stored body's."""
        self._drivers.setdefault(fingerprint, driver)

    def load(self, tx: Tx, run_id: str) -> tuple[Driver | None, Any, dict[str, Any] | None]:
        """(driver, input, None) of a run, or (None, {}, why) when its definition or input
        cannot be loaded any more: the run is then failed, never the worker."""
        head = self._runs.get(run_id)
        if head is None:
            row = tx.run_head(run_id)
            if row is None:
                raise UnknownTargetError(f"no run {run_id}")
            head = self.remember(run_id, row)
        try:
            driver = self.driver(tx, head.fingerprint)
            if head.params is None:  # decoded once: drivers read a run's input, never write it
                head.params = codec.loads(head.input)
        except (UnknownTargetError, LookupError, ValueError, TypeError, RecursionError) as exc:
            return None, {}, {
                "type": "DefinitionError", "step": None,
                "message": f"run {run_id} cannot be driven: {type(exc).__name__}: {exc}"}
        return driver, head.params, None

    def may_have_parent(self, run_id: str) -> bool:
        """False when the cached head says nobody started the run (no read needed)."""
        head = self._runs.get(run_id)
        return head is None or head.parent is not None

    def may_hold_lane(self, run_id: str) -> bool:
        """False when the cached head says the run holds no key's lane."""
        head = self._runs.get(run_id)
        return head is None or head.lane is not None

    def remember(self, run_id: str, row: tuple[str, str, str | None, str | None]) -> Head:
        head = Head(*row)
        with self._lock:
            self._runs[run_id] = head
            if len(self._runs) > self._cache_size:
                self._runs.popitem(last=False)
        return head
