"""PostgreSQL only: a thread turns NOTIFY into a wake-up of the worker's loop, so ready
work starts at once instead of at the next poll. The loop still polls: while the database
is away the listener only retries, once a second."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from ...store import Store, open_store

log = logging.getLogger("waypost.worker")


class Listener:
    """A pipe interrupts the listener's wait on close, so stopping never waits for a
    poll interval."""

    def __init__(self, url: str, stopped: threading.Event, wake: Callable[[], None]) -> None:
        self.url = url
        self.stopped = stopped
        self.wake = wake
        self._interrupt_r, self._interrupt_w = os.pipe()
        self._thread = threading.Thread(target=self._listen, name="waypost-listen", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        store: Store | None = None
        while not self.stopped.is_set():
            try:
                if store is None:
                    store = open_store(self.url)
                if store.wait_for_wakeup(5.0, self._interrupt_r):
                    self.wake()
            except Exception as exc:  # database away: the loop still polls
                log.debug("listener: %s", exc)
                if store is not None:
                    store.close()
                    store = None
                self.stopped.wait(1.0)
        if store is not None:
            store.close()

    def close(self) -> None:
        """Once `stopped` is set."""
        os.write(self._interrupt_w, b"x")
        self._thread.join(10)
        os.close(self._interrupt_r)
        os.close(self._interrupt_w)


def start_listener(url: str, stopped: threading.Event,
                   wake: Callable[[], None]) -> Listener | None:
    """A listener for a PostgreSQL store; None for others, whose workers poll."""
    if not url.startswith(("postgresql:", "postgres:")):
        return None
    return Listener(url, stopped, wake)
