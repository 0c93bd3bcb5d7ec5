"""What every part of `Engine` shares: the settings, a store per thread, and write
transactions that survive a lost commit acknowledgement."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import TypeVar, cast

from ... import codec
from ...errors import InputError
from ...store import DEFAULT_URL, Store, open_store
from ...store.protocol import Tx
from ..core.advance import Advancer
from ..process.worker import Worker

T = TypeVar("T")
D = TypeVar("D")


def one_definition(definition: D | None, flow: D | None, required: bool = False) -> D | None:
    """The definition a call names, by its name or by `flow`, the name it had when flows
    were all there was to start: scripts written then keep working, and naming it both ways
    is refused rather than one silently winning."""
    if definition is not None and flow is not None:
        raise InputError("name the definition once: definition= or flow= (its older "
                         "name), not both")
    if required and definition is None and flow is None:
        raise InputError("name the definition to start (a flow, machine or handler)")
    return definition if definition is not None else flow


class EngineBase:
    """The state behind `Engine`. Its parts subclass this rather than declare what they
    use, so mypy checks them against the real store and advancer."""

    def __init__(self, url: str = DEFAULT_URL, *, lease: float = 30.0, concurrency: int = 8,
                 poll: float = 0.25, create: bool = True) -> None:
        self.url = url
        self.create = create
        self.lease = lease
        self.concurrency = concurrency
        self.poll = poll
        self._local = threading.local()
        self._stores: list[tuple[threading.Thread, Store]] = []
        self._lock = threading.Lock()
        self._advancer = Advancer()
        self._workers: list[Worker] = []
        self._store()  # fail now, not at first use, when the database is unreachable

    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = open_store(self.url, create=self.create)
            with self._lock:
                # A thread that ended (a server's pool lets idle threads go) leaves its
                # connection behind: closed here, or a long-lived server would run the
                # database out of connections.
                gone = [(t, s) for t, s in self._stores if not t.is_alive()]
                self._stores = [(t, s) for t, s in self._stores if t.is_alive()]
                self._stores.append((threading.current_thread(), store))
            for _, old in gone:
                old.close()
        return store

    def _transact(self, fn: Callable[[Tx], T], request: bool = True) -> T:
        """One write transaction that may have made steps ready, then a wake-up for this
        engine's in-process workers.

        `request`: the transaction records its result under an id chosen here, before it.
        When a commit is applied but its acknowledgement lost, the store runs `fn` again;
        that retry finds the id and returns what the first try committed, instead of
        failing on its own earlier work ("token already used", "already cancelled")."""
        tries = 0
        request_id = uuid.uuid4().hex

        def work(tx: Tx) -> T:
            nonlocal tries
            tries += 1
            if request and tries > 1:
                done = tx.request_result(request_id)
                if done is not None:
                    # Read back from JSON: a tuple returns as a list, which callers unpack
                    # or convert the same way.
                    return cast(T, codec.loads(done))
            result = fn(tx)
            if request:
                tx.record_request(request_id, codec.dumps(result))
            return result

        result = self._store().transact(work)
        for worker in self._workers:
            worker.wake()
        return result
