"""Liveness by pid only within one pid space (both stores).

Containers with host networking share a host name, not their pids: a worker whose pid
does not exist *here* may be alive *there*. The sweeper looks at a worker's pid only when
its boot id and pid-namespace id are ours; otherwise the worker's lease decides."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import waypost as wp
from waypost.runtime.core import runs
from waypost.runtime.core.advance import Advancer
from waypost.runtime.process.sweeper import HOST, PID_SPACE, process_gone, sweep
from waypost.store import Store, open_store


@wp.task()
def napping() -> int:
    return 1


@wp.flow()
def one_nap() -> int:
    return napping()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert process_gone(proc.pid)
    return proc.pid


@pytest.mark.parametrize(("pid_ns", "judged_dead"), [
    ("pid:[1]", False),  # another pid namespace: its pid says nothing here
    (PID_SPACE[1], True),  # ours: a pid that does not exist is a dead worker
])
def test_a_dead_pid_in_another_pid_namespace_is_not_a_dead_worker(
        store: Store, pid_ns: str | None, judged_dead: bool) -> None:
    assert None not in PID_SPACE, "this test needs /proc (Linux)"
    advancer = Advancer()
    run_id, _ = store.transact(lambda tx: runs.start(advancer, tx, one_nap, {}, None))
    (task,) = {s["task"] for s in store.read(lambda tx: tx.steps_of(run_id))}
    store.transact(lambda tx: tx.register_worker("elsewhere", HOST, _dead_pid(), "[]", "inc-1",
                                                 PID_SPACE[0], pid_ns, 60.0))
    (claimed,) = store.transact(lambda tx: tx.claim("elsewhere", "b1", 1, 60.0, [task]))

    store.transact(lambda tx: sweep(tx, advancer, "sweeper", 60.0))

    rows = store.read(lambda tx: tx.workers())
    (step,) = store.read(lambda tx: tx.steps_of(run_id))
    if judged_dead:
        assert rows == []
        assert step["status"] == "ready" and step["lease_owner"] is None
    else:
        assert [r.id for r in rows] == ["elsewhere"]
        assert (step["status"], step["lease_owner"]) == ("running", "elsewhere")
        alive = store.transact(lambda tx: tx.renew("elsewhere", [claimed.lease_token], 60.0))
        assert alive == {(claimed.id, claimed.lease_token)}, "its lease still holds"
