"""The store contract, on SQLite and PostgreSQL alike: migrations, idempotent run
creation, claims, and the lease fencing every outcome depends on."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import waypost as wp
from waypost.errors import SchemaVersionError
from waypost.runtime.core import runs
from waypost.runtime.core.advance import Advancer
from waypost.runtime.core.outcome import Outcome
from waypost.store import Store, open_store
from waypost.store.postgres import PostgresTx
from waypost.store.records import ClaimedStep, LimitRow
from waypost.store.sql import SqlTx

from .test_schema import HERE as SCHEMAS
from .test_schema import describe


@wp.task()
def double(x: int) -> int:
    return 2 * x


@wp.task()
def add(a: int, b: int) -> int:
    return a + b


@wp.flow()
def pair(x: int) -> int:
    return add(double(x), double(x))


TASKS = [double.name, add.name]


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.close()


def start(store: Store, x: int = 1, key: str | None = None) -> str:
    run_id, _ = store.transact(lambda tx: runs.start(Advancer(), tx, pair, {"x": x}, key))
    return run_id


def claim(store: Store, owner: str = "w1", token: str = "t1", lease: float = 30.0,
          limit: int = 10, alone: bool = False) -> list[ClaimedStep]:
    return store.transact(lambda tx: tx.claim(owner, token, limit, lease, TASKS, (), alone))


def test_migrate_is_idempotent_and_refuses_a_newer_schema(db_url: str, store: Store) -> None:
    latest = store.migrations()[-1][0]
    assert latest >= 4
    assert store.migrate() == store.migrate() == latest
    store.transact(lambda tx: tx.execute("INSERT INTO waypost_schema (version) VALUES (999)"))
    with pytest.raises(SchemaVersionError, match="999"):
        open_store(db_url)


def _before_schema_21(tx: SqlTx) -> None:
    """The signals table as schema 20 left it: called `events`, its indexes named so."""
    tx.execute("ALTER TABLE signals RENAME TO events")
    if isinstance(tx, PostgresTx):
        for name in ("open", "pkey", "run_id_event_id_key"):
            tx.execute(f"ALTER INDEX signals_{name} RENAME TO events_{name}")
        tx.execute("ALTER SEQUENCE signals_seq_seq RENAME TO events_seq_seq")
    else:
        tx.execute("DROP INDEX signals_open")
        tx.execute("CREATE INDEX events_open ON events(run_id, seq) "
                   "WHERE status IN ('pending', 'deferred')")
    tx.execute("DELETE FROM waypost_schema WHERE version >= 21")


def _before_schema_20(tx: SqlTx) -> None:
    """The runs table as schema 19 left it: its definition's name in `flow`."""
    _before_schema_21(tx)
    tx.execute("DROP INDEX runs_definition")
    tx.execute("ALTER TABLE runs RENAME COLUMN definition TO flow")
    tx.execute("CREATE INDEX runs_flow ON runs(flow, created_at)")
    tx.execute("DELETE FROM waypost_schema WHERE version >= 20")


def test_an_older_schema_is_brought_up_to_date(db_url: str, store: Store) -> None:
    def downgrade(tx: SqlTx) -> None:  # what a database of waypost schema 1 looks like
        _before_schema_20(tx)
        for column in ("tasks", "incarnation", "boot_id", "pid_ns", "lease"):
            tx.execute(f"ALTER TABLE workers DROP COLUMN {column}")
        for column in ("heartbeat", "heartbeat_at", "heartbeat_details", "completion_token",
                       "queue_timeout", "quarantine", "lost_alone"):
            tx.execute(f"ALTER TABLE steps DROP COLUMN {column}")
        tx.execute("DROP INDEX runs_deadline")
        tx.execute("ALTER TABLE runs DROP COLUMN deadline_at")
        tx.execute("DROP TABLE dead_letters")
        tx.execute("DROP TABLE retry_budgets")
        tx.execute("DROP INDEX steps_waiting")
        tx.execute("DROP TABLE limit_grants")
        tx.execute("DROP TABLE limits")
        tx.execute("DROP TABLE requests")
        tx.execute("DROP TABLE transitions")
        tx.execute("DROP TABLE events")
        tx.execute("ALTER TABLE workers DROP COLUMN definitions")
        tx.execute("DROP INDEX runs_parent")
        tx.execute("DROP TABLE api_tokens")
        tx.execute("DROP INDEX runs_created")
        tx.execute("DROP TABLE schedules")
        for table in ("metric_totals", "metric_durations", "metric_marks"):
            tx.execute(f"DROP TABLE {table}")
        tx.execute("DROP INDEX steps_finished")
        tx.execute("DROP INDEX attempts_expired")
        tx.execute("DROP TABLE topic_wait_shapes")
        tx.execute("DROP TABLE topic_waits")
        for table in ("lane_queue", "delivery_lanes", "topic_gate", "subscriptions",
                      "topic_events"):
            tx.execute(f"DROP TABLE {table}")
        tx.execute("DROP INDEX runs_correlation")
        tx.execute("DROP INDEX runs_trigger")
        for column in ("correlation_id", "trigger_event", "lane"):
            tx.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        for column in ("parent_run", "parent_step"):
            tx.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        for column in ("state", "data", "transitions"):
            tx.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        tx.execute("DELETE FROM waypost_schema WHERE version > 1")

    store.transact(downgrade)
    again = open_store(db_url)
    try:
        again.transact(lambda tx: tx.register_worker("w", "h", 1, '["t"]'))
        assert again.read(lambda tx: tx.served_tasks(60.0)) == {"t"}
    finally:
        again.close()


def test_runs_stored_before_the_definition_column_keep_their_definition(
        db_url: str, store: Store) -> None:
    first, second = start(store, 1, key="old"), start(store, 2)
    store.transact(_before_schema_20)
    assert store.read(lambda tx: tx.execute(
        "SELECT flow FROM runs WHERE id = ?", (first,)).fetchone()) == (pair.name,)
    again = open_store(db_url)  # migrates to schema 20
    try:
        rows = again.read(lambda tx: [tx.get_run(first), tx.get_run(second)])
        assert [r and r["definition"] for r in rows] == [pair.name, pair.name]
        short = pair.name.rpartition(":")[2]
        assert [r["id"] for r in again.read(lambda tx: tx.list_runs(None, short, 10))] == [
            second, first]
        assert start(again, 1, key="old") == first  # the key still finds its run
        expected = (SCHEMAS / f"{again.dialect}.txt").read_text().splitlines()
        assert describe(again) == expected  # the column and its index under their new names
    finally:
        again.close()


def test_signals_stored_before_the_table_was_renamed_are_kept(db_url: str, store: Store) -> None:
    """Schema 21 renames `events` to `signals` in place: a signal stored under the old name
    is still open, still found by its id, and the seq goes on from where it was."""
    run_id = start(store)
    first, _ = store.transact(lambda tx: tx.add_signal(run_id, "paid", "e1", '{"a":1}'))
    store.transact(_before_schema_21)
    assert store.read(lambda tx: tx.execute(
        "SELECT name, status FROM events WHERE seq = ?", (first,)).fetchone()) == (
        "paid", "pending")
    again = open_store(db_url)  # migrates to schema 21
    try:
        assert again.read(lambda tx: tx.open_signals(run_id)) == [
            (first, "paid", "e1", '{"a":1}', "pending")]
        assert again.transact(lambda tx: tx.add_signal(run_id, "paid", "e1", "null")) == (
            first, False), "the stored signal's id still makes a repeat"
        second, new = again.transact(lambda tx: tx.add_signal(run_id, "other", None, "null"))
        assert new and second > first
        run = again.read(lambda tx: tx.get_run(run_id))
        assert run is not None
        assert again.read(lambda tx: tx.runs_with_pending_signals([run["fingerprint"]],
                                                                  10)) == [run_id]
        expected = (SCHEMAS / f"{again.dialect}.txt").read_text().splitlines()
        assert describe(again) == expected  # the table and its indexes under their new names
    finally:
        again.close()


def test_new_run_has_its_roots_ready_and_the_rest_pending(store: Store) -> None:
    run_id = start(store)
    steps = {s["name"]: s for s in store.read(lambda tx: tx.steps_of(run_id))}
    assert {n: s["status"] for n, s in steps.items()} == {
        "double": "ready", "double#2": "ready", "add": "pending"}
    assert steps["add"]["waiting_on"] == 2
    assert len({s["idempotency_key"] for s in steps.values()}) == 3


def test_same_key_same_input_is_one_run_other_input_is_refused(store: Store) -> None:
    first = start(store, 1, key="k-1")
    assert start(store, 1, key="k-1") == first
    with pytest.raises(wp.IdempotencyConflict, match="k-1"):
        start(store, 2, key="k-1")
    assert len(store.read(lambda tx: tx.list_runs(None, None, 10))) == 1


def test_a_step_is_claimed_once(store: Store) -> None:
    start(store)
    a = claim(store, "w1", "t1")
    b = claim(store, "w2", "t2")
    assert len(a) == 2 and b == []


def test_outcome_needs_the_live_lease_token(store: Store) -> None:
    run_id = start(store)
    step = claim(store)[0]
    advancer = Advancer()

    def report(token: str) -> list[bool]:
        o = Outcome(step.id, run_id, token, output="2")
        return store.transact(lambda tx: advancer.record(tx, [o])[0])

    assert report("stolen") == [False]
    assert report("t1") == [False], "the batch alone is no lease token"
    assert report(step.lease_token) == [True]
    assert report(step.lease_token) == [False], "the same attempt cannot record a second outcome"


def test_expired_lease_rejects_late_outcome_and_heartbeat(store: Store) -> None:
    run_id = start(store)
    steps = claim(store, lease=0.2)
    time.sleep(0.35)
    tokens = [s.lease_token for s in steps]
    assert store.transact(lambda tx: tx.renew("w1", tokens, 30.0)) == set()
    late = Outcome(steps[0].id, run_id, steps[0].lease_token, output="2")
    assert store.transact(lambda tx: Advancer().record(tx, [late])[0]) == [False]
    expired = store.read(lambda tx: tx.expired(10))
    assert {e.step_id for e in expired} == {s.id for s in steps}


def test_sweeper_requeues_expired_attempts_as_lost(store: Store) -> None:
    from waypost.runtime.process.sweeper import sweep

    run_id = start(store)
    claim(store, lease=0.1)
    time.sleep(0.25)
    assert store.transact(lambda tx: sweep(tx, Advancer(), "sweeper-1", 5.0)) == 2
    steps = {s["name"]: s for s in store.read(lambda tx: tx.steps_of(run_id))}
    history = store.read(lambda tx: tx.attempts_of(run_id))
    # A lost worker is not the task's failure: ready again, without using up its retries.
    assert steps["double"]["status"] == "ready"
    assert (steps["double"]["attempts"], steps["double"]["max_attempts"]) == (1, 2)
    assert {h["outcome"] for h in history} == {"lost"}
    assert store.read(lambda tx: tx.get_run(run_id))["status"] == "pending"


def test_a_limit_grant_holds_a_slot_only_while_its_attempt_runs(store: Store) -> None:
    from waypost.runtime.process.sweeper import sweep

    limit = LimitRow("api", "2/0.6s", 2, 0.6, 5)
    store.transact(lambda tx: tx.put_limits([limit]))
    assert store.transact(lambda tx: tx.lock_limits(["api", "other"])) == [limit]
    assert store.read(lambda tx: tx.ready_among([TASKS, [add.name]])) == [False, False]
    start(store)
    assert store.read(lambda tx: tx.ready_among([TASKS, [add.name]])) == [True, False]
    steps = claim(store, lease=0.1)
    store.transact(lambda tx: tx.add_grants([("api", s.id, s.lease_token) for s in steps]))
    use = store.read(lambda tx: tx.limit_usage("api", 0.6, 2, True))
    assert (use.granted, use.running) == (2, 2) and use.nth is not None
    time.sleep(0.15)  # the lease expires; the sweeper gives the steps back
    store.transact(lambda tx: sweep(tx, Advancer(), "sweeper-1", 5.0))
    use = store.read(lambda tx: tx.limit_usage("api", 0.6, 2, True))
    assert (use.granted, use.running) == (2, 0), "in the rate window, holding no slot"
    assert store.read(lambda tx: tx.limits_in_use(0.0)) == [(limit, 2, 0)]
    time.sleep(0.5)
    assert store.transact(lambda tx: tx.prune_grants(0.0)) == 2
    assert store.read(lambda tx: tx.limits_in_use(0.0)) == [(limit, 0, 0)]


def test_a_step_that_keeps_losing_its_worker_is_declared_dead(store: Store) -> None:
    from waypost.runtime.core.retries import LOST_ATTEMPTS_LIMIT
    from waypost.runtime.process.sweeper import sweep

    run_id = start(store)
    for _ in range(2 * LOST_ATTEMPTS_LIMIT + 1):  # lost together once, then each alone
        claim(store, lease=0.05, alone=True)
        time.sleep(0.1)
        store.transact(lambda tx: sweep(tx, Advancer(), "sweeper-1", 5.0))
    steps = {s["name"]: s for s in store.read(lambda tx: tx.steps_of(run_id))}
    assert steps["double"]["status"] == "failed"
    assert str(LOST_ATTEMPTS_LIMIT) in steps["double"]["error"]
    assert store.read(lambda tx: tx.get_run(run_id))["status"] == "failed"


def test_a_step_lost_beside_others_is_next_claimed_alone_and_not_charged(store: Store) -> None:
    from waypost.runtime.process.sweeper import sweep

    run_id = start(store)
    assert len(claim(store, lease=0.05)) == 2
    time.sleep(0.1)
    store.transact(lambda tx: sweep(tx, Advancer(), "sweeper-1", 5.0))  # both lost together
    assert claim(store, "w2", "b2") == [], "in quarantine: only a worker holding nothing"
    (solo,) = claim(store, "w2", "b3", lease=0.05, alone=True)
    assert solo.solo, "and it is all that worker gets"
    steps = {s["name"]: s for s in store.read(lambda tx: tx.steps_of(run_id))}
    other = next(s for s in steps.values() if s["status"] == "ready")
    assert (other["attempts"], other["lease_owner"]) == (1, None), "given back as it was"
    time.sleep(0.1)
    store.transact(lambda tx: sweep(tx, Advancer(), "sweeper-1", 5.0))  # lost alone
    counts = store.read(lambda tx: tx.execute(
        "SELECT id, lost_alone FROM steps WHERE kind = 'task' AND name <> 'add'").fetchall())
    assert sorted(int(n) for _, n in counts) == [0, 1], "only the loss while alone counts"


def test_only_one_sweeper_holds_the_lease(store: Store) -> None:
    def take(owner: str) -> bool:
        return store.transact(lambda tx: tx.try_lease("sweeper", owner, 5.0))

    assert take("a") and take("a")
    assert not take("b")


def test_database_clock_is_used(store: Store) -> None:
    now = store.read(lambda tx: tx.now())
    assert abs(now - time.time()) < 5


def test_transaction_rolls_back_on_error(store: Store) -> None:
    run_id = start(store)

    def half(tx: SqlTx) -> None:
        tx.finish_run(run_id, "succeeded", "1", None)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.transact(half)
    assert store.read(lambda tx: tx.get_run(run_id))["status"] == "pending"


def test_a_worker_without_tasks_claims_nothing(store: Store) -> None:
    start(store)
    assert store.transact(lambda tx: tx.claim("w", "t", 5, 30.0, [])) == []
    assert store.read(lambda tx: tx.next_ready_at([])) is None


def test_a_read_sees_one_snapshot(db_url: str, store: Store) -> None:
    """`show` reads a run and its steps in one read: a write committed between its
    statements must not tear it (PostgreSQL reads once saw a step escalated under a run
    still `running`)."""
    run_id = start(store)
    other = open_store(db_url)

    def read(tx: SqlTx) -> tuple[str, str]:
        before = tx.get_run(run_id)
        assert before is not None
        other.transact(lambda t: t.set_run_status(run_id, "needs_attention", ["pending"]))
        after = tx.get_run(run_id)
        assert after is not None
        return before["status"], after["status"]

    try:
        assert store.read(read) == ("pending", "pending")
        assert store.read(lambda tx: tx.get_run(run_id))["status"] == "needs_attention"
    finally:
        other.close()


def test_foreign_keys_hold(store: Store) -> None:
    """A step, an attempt or a dead letter of nothing is refused on both stores (SQLite
    checks references only with `PRAGMA foreign_keys = ON`)."""
    def orphan_step(tx: SqlTx) -> None:
        tx.execute("INSERT INTO steps (run_id, name, node, kind, task, status, waiting_on, "
                   "max_attempts, idempotency_key) VALUES ('no-such-run', 'a', 'a', 'task', "
                   "'t', 'ready', 0, 1, 'k')")

    def orphan_attempt(tx: SqlTx) -> None:
        tx.execute("INSERT INTO attempts (step_id, attempt, outcome, finished_at) "
                   "VALUES (987654, 1, 'failed', 0)")

    for write in (orphan_step, orphan_attempt):
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            store.transact(write)
