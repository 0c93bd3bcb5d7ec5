"""An engine shared by threads that come and go (a server's pool lets idle threads end)
keeps one connection per live thread, never one per thread it ever saw (both stores)."""

from __future__ import annotations

import threading

import waypost as wp


def test_the_connections_of_ended_threads_are_closed(engine: wp.Engine) -> None:
    for _ in range(30):
        t = threading.Thread(target=lambda: engine.runs(limit=1))
        t.start()
        t.join()
    kept = engine._stores  # closed when the next thread opens one: the last ended stays
    assert len(kept) <= 2, f"{len(kept)} connections kept for 30 threads that ended"
    assert sum(not thread.is_alive() for thread, _ in kept) <= 1
