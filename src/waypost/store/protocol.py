"""The store's contract: every verb the runtime calls on a transaction, and what it promises.

`Store.transact(fn)` hands `fn` a `Tx`; the runtime sees nothing else of the database (no
SQL, no connection). `SqlTx` (store/sql/) is the one implementation, shared by SQLite
and PostgreSQL; tests/unit/test_store_protocol.py keeps the two lists of verbs equal and
tests/contract/ checks each verb's promise on both databases.

How to read the atomicity each verb states:

- **one statement**: the verb is atomic on its own. Where it has a condition (the
  fence), the check and the write are that one statement, so no concurrent writer can
  slip between them, and a verb whose fence fails changes nothing.
- **needs the caller's transaction**: more than one statement, or a read whose answer
  only holds while the caller's transaction holds a lock; atomic only because
  `Store.transact` commits everything `fn` did at once.
- **fenced by**: the condition that makes a stale caller (a lost lease, a retried
  transaction after a lost commit acknowledgement, a second operator) match nothing.
  Every write that changes a step's status names the status it expects (and, for an
  attempt's outcome, its lease token). A verb marked **unfenced** trusts the caller to
  have fenced the same row earlier in the same transaction.
- **locks**: on PostgreSQL `{lock}` is `FOR UPDATE` (held to the end of the transaction)
  and `skip locked` is `FOR UPDATE SKIP LOCKED`; SQLite has one writer at a time (write
  transactions begin IMMEDIATE), so there every write transaction is serial and a read
  in a write transaction cannot be overtaken.

Times are Unix seconds from the database's clock, never the caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .records import (
    ClaimedStep,
    Expired,
    HeldStep,
    LimitRow,
    LimitUsage,
    NewStep,
    RunRow,
    ScheduleRow,
    StepRow,
    SubscriptionRow,
    TopicEvent,
    WorkerRow,
)


class Tx(Protocol):
    """One transaction's verbs (see the module docstring for the terms)."""

    # -- the database itself ---------------------------------------------------------------
    def now(self) -> float:
        """The database's clock. One statement; on PostgreSQL the statement's start time."""

    def notify(self) -> None:
        """Wake idle workers of this store once the transaction commits (PostgreSQL NOTIFY,
        delivered only on commit); nothing on SQLite, whose workers poll."""

    # -- definitions -----------------------------------------------------------------------
    def put_definition(self, fingerprint: str, name: str, kind: str, body: str) -> None:
        """Store a flow definition under its fingerprint; an existing one is kept as it is
        (same fingerprint, same body). One statement."""

    def definition(self, fingerprint: str) -> tuple[str, str] | None:
        """(kind, body) stored under `fingerprint`, or None: the kind chooses the driver.
        One statement, a read."""

    # -- requests: operators' writes that recognise their own earlier commit ---------------
    def request_result(self, request: str) -> str | None:
        """The JSON result committed under request id `request`, or None. One statement, a
        read: a transaction retried after a lost commit acknowledgement asks it first."""

    def record_request(self, request: str, result: str) -> None:
        """Record what the request committed, in the request's own (the caller's)
        transaction. One statement; the primary key makes a second record of one request
        fail (and roll the transaction back)."""

    def prune_requests(self, older_than: float) -> int:
        """Forget requests older than `older_than` seconds. One statement."""

    # -- runs ------------------------------------------------------------------------------
    def insert_run(self, run_id: str, flow: str, fingerprint: str, key: str | None,
                   input: str, checksum: str, open_steps: int,
                   correlation: str | None = None, trigger: int | None = None,
                   lane: str | None = None) -> bool:
        """Create a pending run; False (nothing written) when the id or the idempotency key
        exists. One statement: the unique constraints are the check, so two concurrent
        starts with one key create one run. A run started by an event carries the event's
        `correlation` id, the event's seq (`trigger`) and, for a keyed delivery, the key of
        the `lane` it holds until it ends."""

    def run_id_by_key(self, key: str) -> str | None:
        """The id of the run started under idempotency key `key`, if any. One statement,
        a read."""

    def run_by_key(self, key: str) -> tuple[str, str, str]:
        """(id, flow, input checksum) of the run holding idempotency key `key`, which must
        exist (call it after `insert_run` returned False). One statement, a read."""

    def lock_run(self, run_id: str) -> RunRow | None:
        """A run's row, locked to the end of the transaction (PostgreSQL `FOR UPDATE`):
        resume, replay, cancel and operators' answers take it first, so two of them on one
        run happen one after the other, the second seeing what the first committed. Besides
        `get_run`'s fields, a machine's `state`, `data` and `transitions` (as `machine`
        reads them). One statement."""

    def link_child(self, child: str, parent: str, step: str) -> None:
        """Record that run `child` was started by `step` of run `parent`; the child inherits
        the parent's correlation id. One statement."""

    def parent_of(self, run_id: str) -> tuple[str, str] | None:
        """(parent run, step) of a child run; None for a run nobody started. One
        statement, a read."""

    def children_of(self, run_id: str) -> list[dict[str, Any]]:
        """The runs a run's steps started (id, flow, status, step), oldest first. One
        statement, a read."""

    def run_head(self, run_id: str) -> tuple[str, str, str | None, str | None] | None:
        """(fingerprint, input, parent run, lane key) of a run, or None. One statement, a
        read."""

    def add_open(self, run_id: str, delta: int) -> int:
        """Add `delta` to the run's count of open steps and return the new count. One
        statement; unfenced (the caller holds the step whose outcome changed the count)."""

    def finish_run(self, run_id: str, status: str, output: str | None,
                   error: str | None) -> None:
        """End a run with `status`. One statement, fenced by the run being open or
        compensating: an ended run is never overwritten."""

    def mark_runs_running(self, run_ids: Sequence[str]) -> None:
        """pending -> running (first claim of a run). One statement, fenced by `pending`."""

    def reopen_run(self, run_id: str, open_steps: int) -> None:
        """A resumed run runs again: error, output, end and deadline cleared. One
        statement; unfenced: the caller locked and checked the run first."""

    def set_deadline(self, run_id: str, seconds: float) -> None:
        """The run ends `seconds` after its creation if still open. One statement."""

    def overdue_runs(self, limit: int) -> list[str]:
        """Open runs whose deadline passed, oldest deadline first. One statement, a read:
        the caller ends each with `end_run`, which fences a run that ended meanwhile."""

    def cancel_steps(self, run_id: str, error: str) -> int:
        """End every unfinished step of a run as cancelled, recording running attempts as
        `cancelled` in their history; returns how many steps ended. Two statements: needs
        the caller's transaction. Fenced by status (ended steps are untouched); the
        cancelled attempts' workers find out at their next renewal, their late outcomes
        match nothing (their lease token is cleared)."""

    def end_run(self, run_id: str, status: str, error: str) -> bool:
        """End an open run early (cancel, deadline); False if it had already ended. One
        statement, fenced by the run being open."""

    def get_run(self, run_id: str) -> RunRow | None:
        """A run's row (RUN_COLUMNS), or None. One statement, a read."""

    def run_ids_like(self, prefix: str) -> list[str]:
        """Up to two run ids starting with `prefix` (two: enough to call it ambiguous).
        One statement, a read."""

    def list_runs(self, status: str | None, flow: str | None, limit: int, *,
                  kind: str | None = None, key: str | None = None, since: float | None = None,
                  until: float | None = None, search: str | None = None,
                  before: tuple[float, str] | None = None) -> list[RunRow]:
        """Newest runs first, optionally of one status, one flow (its full name or the part
        after the module), one kind of definition, one key, created in [since, until),
        whose input's JSON text contains `search`, and after `before` (the created_at and
        id of the last run of the page before: keyset paging). One statement, a read."""

    def step_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """(succeeded, all, suspicious) steps of each run; a run without steps is absent.
        One statement, a read."""

    # -- steps: creation and the DAG's bookkeeping -----------------------------------------
    def insert_steps(self, run_id: str, steps: Sequence[NewStep], keys: Sequence[str]) -> None:
        """Insert a run's steps, each with its idempotency key. One statement per step:
        needs the caller's transaction (with the run they belong to)."""

    def release(self, run_id: str, names: Sequence[str]) -> list[str]:
        """One dependency of each named pending step is done; returns those now waiting on
        nothing, in the order named. One statement, fenced by `pending`."""

    def outputs(self, run_id: str, names: Sequence[str]) -> dict[str, str]:
        """The stored output of each named step. One statement, a read."""

    def make_ready(self, run_id: str, name: str, input: str, checksum: str) -> None:
        """Give a step its rendered input and make it ready now. One statement, fenced by
        `pending`."""

    def start_map(self, run_id: str, name: str, children: int) -> None:
        """A map step runs while its `children` items are open. One statement, fenced by
        `pending`."""

    def item_done(self, run_id: str, node: str, count: int = 1) -> int:
        """`count` items of a running map ended; returns how many are still open. One
        statement, fenced by the map being running."""

    def map_items(self, run_id: str, node: str) -> list[tuple[str, str | None, str | None]]:
        """(status, output, error) of a map's items in index order. One statement, a read."""

    def end_node(self, run_id: str, name: str, status: str, output: str | None,
                 error: str | None) -> None:
        """End a step that no worker runs (a map, a branch, a machine's waiting visit) with
        `status`. One statement, fenced by `pending`, `running` or `waiting`: an ended step
        is never overwritten."""

    def block(self, run_id: str, names: Sequence[str]) -> int:
        """Pending steps that can never start (something they need failed) end as
        `upstream_failed`; returns how many. One statement, fenced by `pending`."""

    def first_failure(self, run_id: str) -> tuple[str, str | None] | None:
        """(name, error) of the run's first failed step, undo steps aside. One statement,
        a read."""

    def steps_of(self, run_id: str) -> list[StepRow]:
        """Every step of a run (STEP_COLUMNS plus `suspicious`: missed two heartbeats by
        the database's clock), in creation order. One statement, a read."""

    def attempts_of(self, run_id: str) -> list[dict[str, Any]]:
        """The history of every step of a run. One statement, a read."""

    def reset_step(self, step_id: int, was: str, status: str, waiting_on: int,
                   max_attempts: int) -> bool:
        """Put a step back for resume or replay: output, error and end cleared; False if
        it is no longer `was`. One statement, fenced by `was` (the status the caller read
        under the run's lock): a step a worker completed meanwhile is never set back."""

    # -- claims, leases and outcomes -------------------------------------------------------
    def claimed_with(self, owner: str, batch: str) -> list[ClaimedStep]:
        """Steps still running for `owner` under claim `batch`: a transaction retried after
        its commit applied finds its own claims. One statement, a read."""

    def claim(self, owner: str, batch: str, limit: int, lease: float, tasks: Sequence[str],
              external: Sequence[str] = (), alone: bool = False) -> list[ClaimedStep]:
        """Take up to `limit` ready steps of `tasks` whose time has come, oldest first,
        leasing them to `owner` for `lease` seconds and counting an attempt. Each gets its
        own unguessable lease token (`batch` and a random part the database draws per
        row); steps of the `external` tasks also get a random completion token. A step in
        quarantine is taken only `alone`, and then by itself. One statement (two when a
        quarantined step came with others, given back in the same transaction), fenced by
        `ready`; skip locked on PostgreSQL, so two workers never take one step and never
        wait on each other."""

    def next_ready_at(self, tasks: Sequence[str]) -> float | None:
        """When the earliest ready step of `tasks` becomes claimable. One statement, a read."""

    def succeed_many(self, done: Sequence[tuple[int, str, str]]) -> list[HeldStep | None]:
        """`succeed` for each (step id, lease token, output), in order. One statement per
        outcome (one round trip on PostgreSQL); each is fenced on its own."""

    def succeed(self, step_id: int, token: str, output: str) -> HeldStep | None:
        """Record a successful attempt; None if `token` no longer holds the step. One
        statement, fenced by `running`, the lease token, a live lease and the timeout not
        passed: an attempt records at most one outcome."""

    def expire_queued(self, error: str, limit: int) -> list[HeldStep]:
        """Fail ready steps that waited longer than their queue timeout. One statement,
        fenced by `ready` (a step claimed meanwhile is untouched); skip locked."""

    def hand_off(self, step_id: int, token: str, completion_token: str) -> bool:
        """The task handed its work to another system: the step stays running without a
        lease until `completion_token` is used. One statement, fenced by `running`, the
        lease token and a live lease."""

    def complete_external(self, step_id: int, completion_token: str,
                          output: str) -> HeldStep | None:
        """Another system completed a handed-off step; None if the token does not match
        (or was used). One statement, fenced by `running` and the completion token (or,
        before the hand-off is recorded, the lease token it embeds)."""

    def fail_external(self, step_id: int, completion_token: str,
                      error: str) -> HeldStep | None:
        """Another system failed a handed-off step: its attempt is recorded as failed and
        the step returned (still running) for the caller to retry or fail. Two statements:
        needs the caller's transaction; fenced like `complete_external`, the row locked."""

    def end_attempt(self, step_id: int, token: str, outcome: str, error: str,
                    expired: bool) -> HeldStep | None:
        """Record a failed or lost attempt in the step's history if `token` holds the step
        (a live lease for a worker's report, an expired one for the sweeper's); None
        otherwise. The step stays running: the caller follows with `retry_later`, `fail`
        or `escalate`. Two statements: needs the caller's transaction; the row locked."""

    def retry_later(self, step_id: int, delay: float, error: str,
                    extra_attempt: bool = False) -> None:
        """Back to ready after `delay` seconds, the lease cleared; `extra_attempt` adds one
        to the budget (not the task's fault). One statement, fenced by `running` (called
        after `end_attempt` or another token-fenced verb returned this step)."""

    def lost_attempts(self, step_id: int) -> int:
        """A write: record that the step's attempt was lost with its worker, and return
        how many of its attempts were lost while running alone (this one included); a loss
        beside other attempts counts nothing and puts the step in quarantine. One
        statement, unfenced: call it once, after `end_attempt` returned the lost attempt."""

    def fail(self, step_id: int, error: str) -> None:
        """The step failed for good, the lease cleared. One statement, fenced by `running`
        (called after a token-fenced verb returned this step)."""

    def renew(self, owner: str, tokens: Sequence[str], lease: float) -> set[tuple[int, str]]:
        """Extend the live leases `owner` runs under `tokens` by `lease` seconds; returns
        their (step id, lease token). One statement per 500 tokens, fenced by `running`, a
        live lease and the token: a lease that ran out is never revived, and one an
        earlier incarnation under the same name held is not renewed."""

    def beat(self, step_id: int, token: str, details: str) -> None:
        """A task's heartbeat with its details. One statement, fenced by `running`, the
        lease token and a live lease."""

    def expired(self, limit: int) -> list[Expired]:
        """Running leased steps whose lease, timeout or heartbeats ran out, with why. One
        statement, a read: the caller ends each with `end_attempt(expired=True)`, which
        fences a step renewed or finished meanwhile."""

    def release_held(self, owner: str, tokens: Sequence[str], reason: str) -> int:
        """A stopping worker gives back what it runs under `tokens`: ready again at once,
        each attempt kept in the history as `released` with `reason`, one more attempt
        allowed. Needs the caller's transaction (history, then the steps); fenced by
        `owner`, the tokens and `running`."""

    def expire_owner(self, owner: str) -> int:
        """Mark `owner`'s leases run out now (its process is known dead), so the sweeper
        takes them at once. One statement, fenced by `owner` and `running`."""

    # -- waiting: gates, sleeps, escalations -----------------------------------------------
    def make_waiting(self, run_id: str, name: str, due: float | None) -> int | None:
        """A gate, sleep or event wait waits until `due` (None: until someone acts); its
        step id, None when it was not pending. One statement, fenced by `pending`."""

    def due_waits(self, limit: int) -> list[tuple[int, str, str, str, str]]:
        """(id, run, name, kind, status) of waiting or escalated steps whose time has come.
        One statement that locks what it returns (skip locked: a write transaction on
        PostgreSQL); `end_wait`/`retry_now` fence each."""

    def end_wait(self, step_id: int, was: str, status: str, output: str | None,
                 error: str | None) -> HeldStep | None:
        """End a step that was in status `was`; None if it no longer is. One statement,
        fenced by `was`: a timer, an approval and an operator's answer each act once."""

    def step_named(self, run_id: str, name: str) -> dict[str, Any] | None:
        """A step by name, its row locked. One statement; the lock lasts to the end of the
        caller's transaction (PostgreSQL), so what it read stays true there."""

    def escalate(self, step_id: int, error: str, timeout: float | None) -> None:
        """The step waits for an operator (acted on after `timeout`, None: never), the
        lease cleared. One statement, fenced by `running` (after `end_attempt` returned
        it)."""

    def attention(self, run_id: str) -> None:
        """An open run is `needs_attention` while any step is, `running` again once none
        is. One statement, fenced by the run being open."""

    def retry_now(self, step_id: int, was: str, max_attempts: int) -> bool:
        """An operator's retry: ready now with budget `max_attempts`; False if the step is
        no longer `was`. One statement, fenced by `was`."""

    def escalate_wait(self, step_id: int) -> bool:
        """A gate nobody answered in time waits for an operator; False if it is no longer
        waiting. One statement, fenced by `waiting`."""

    def failed_attempts(self, step_id: int) -> int:
        """Attempts of a step that failed, timed out or missed heartbeats. One statement."""

    def record_decision(self, step_id: int, outcome: str, by: str | None,
                        detail: str | None) -> None:
        """A person's (or a timer's) decision joins the step's history, numbered -1, -2, ...
        One statement; two at once on one step collide on the key and the second
        transaction is refused (the caller fences with `end_wait`/`retry_now` first)."""

    # -- compensation ----------------------------------------------------------------------
    def compensable(self, run_id: str, nodes: Sequence[str]) -> list[dict[str, Any]]:
        """Succeeded task and item steps of `nodes`, most recently finished first. One
        statement, a read."""

    def start_compensation(self, run_id: str, error: str, open_steps: int) -> None:
        """The run is compensating after `error`. One statement; unfenced: the caller
        decided it while ending the run in this transaction."""

    def end_compensation(self, run_id: str, status: str = "compensated",
                         was: str = "compensating") -> None:
        """Compensation is over: pending undo steps cancelled, the run `status` if it was
        `was`. Two statements: needs the caller's transaction; the run fenced by `was`."""

    def next_compensation(self, run_id: str, index: int) -> bool:
        """Make the undo step number `index` ready; False if it is not pending. One
        statement, fenced by `pending`."""

    def set_run_status(self, run_id: str, status: str, was: Sequence[str]) -> bool:
        """Change a run's status if it is one of `was`. One statement, fenced by `was`."""

    # -- dead letters and retry budgets ----------------------------------------------------
    def add_dead_letter(self, step_id: int, error: str) -> None:
        """A copy of the step (input, attempts) as it died joins the dead-letter queue. One
        statement; unfenced: the caller just failed the step."""

    def dead_letters(self, status: str | None, run_id: str | None,
                     limit: int) -> list[dict[str, Any]]:
        """Newest letters first, optionally of one status and one run. One statement."""

    def dead_letter(self, letter_id: int) -> dict[str, Any] | None:
        """One letter, its row locked to the end of the caller's transaction (PostgreSQL),
        so two replays of one letter are serial. One statement."""

    def attempts_of_step(self, step_id: int) -> list[dict[str, Any]]:
        """One step's history by attempt number. One statement, a read."""

    def letters_replayed(self, step_ids: Sequence[int], patched: str | None) -> None:
        """The dead letters of these steps are being retried (with `patched` input, if
        any). One statement, fenced by `dead`: a letter is replayed once."""

    def patch_input(self, step_id: int, input: str, checksum: str) -> None:
        """Replace a step's input (a replay with a patch). One statement; unfenced."""

    def spend_retry(self, task: str, budget: int, period: float) -> bool:
        """Take one retry from `task`'s budget of `budget` per fixed `period` window; False
        (the refusal counted) when spent. Two statements: needs the caller's transaction;
        the first (an upsert) locks the task's row, so concurrent spenders are serial."""

    def retry_budgets(self, tasks: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The budget rows of `tasks` (absent: never spent). One statement, a read."""

    # -- limits ----------------------------------------------------------------------------
    def put_limits(self, limits: Sequence[LimitRow]) -> None:
        """Create or redefine limits. One statement per limit."""

    def get_limits(self, names: Sequence[str]) -> list[LimitRow]:
        """The named limits that exist, by name. One statement, a read."""

    def ready_among(self, groups: Sequence[Sequence[str]]) -> list[bool]:
        """For each group of tasks, whether one of its steps is claimable now. One
        statement, a read (a hint: the claim that follows is the check)."""

    def lock_limits(self, names: Sequence[str]) -> list[LimitRow]:
        """Lock the named limits in name order (never a cycle between claimers) until the
        caller's transaction ends, and return them. One statement; the lock is what makes
        `limit_usage` then `add_grants` one decision per limit at a time."""

    def limit_usage(self, name: str, window: float | None, rate_count: int | None,
                    concurrency: bool) -> LimitUsage:
        """Grants in the rate window, slots held, and the window's n-th newest grant. One
        statement, a read; true only under `lock_limits` in the caller's transaction."""

    def add_grants(self, grants: Sequence[tuple[str, int, str]]) -> None:
        """Record (limit, step id, lease token) grants at this statement's time. One
        statement; a grant holds a slot only while its step runs under that token."""

    def prune_grants(self, margin: float) -> int:
        """Forget grants out of their rate window (plus `margin`) that hold no slot;
        returns how many. One statement."""

    def limits_in_use(self, margin: float,
                      names: Sequence[str] | None = None) -> list[tuple[LimitRow, int, int]]:
        """Every limit (or the named ones) with its grants in the window and its slots in
        use. One statement, a read."""

    # -- workers and leader election -------------------------------------------------------
    def register_worker(self, worker_id: str, host: str, pid: int, tasks: str,
                        incarnation: str | None = None, boot_id: str | None = None,
                        pid_ns: str | None = None, lease: float | None = None,
                        definitions: str | None = None) -> WorkerRow | None:
        """Register this incarnation of a worker (pid, boot id, pid namespace, lease, and
        the JSON {name: fingerprint} of the machine definitions its code has);
        returns the row of an earlier incarnation under the same id, whose leases are
        expired here at once. Needs the caller's transaction; the old row is locked."""

    def served_tasks(self, fresh_within: float) -> set[str]:
        """Tasks served by workers that beat within `fresh_within` seconds. One statement."""

    def worker_alive(self, worker_id: str) -> None:
        """A worker's heartbeat. One statement."""

    def remove_worker(self, worker_id: str, incarnation: str | None = None) -> bool:
        """Forget a worker (with `incarnation`, only that one) and the named leases it
        held; False if that incarnation was gone. Two statements: needs the caller's
        transaction."""

    def expire_leases(self, owner: str, tokens: list[str]) -> int:
        """Mark the leases `owner` holds under `tokens` run out now (its own attempts,
        which it can no longer run). One statement per 500 tokens, fenced by `owner`, the
        tokens and `running`."""

    def workers_on(self, host: str) -> list[WorkerRow]:
        """The workers registered on `host`, locked (PostgreSQL) while a judgement on them
        is made. One statement."""

    def workers_named(self, ids: list[str]) -> dict[str, WorkerRow]:
        """The registered workers among `ids`, by id. One statement, a read."""

    def workers(self) -> list[WorkerRow]:
        """Every registered worker. One statement, a read."""

    def forget_stale_workers(self, older_than: float) -> None:
        """Forget workers silent for `older_than` seconds. One statement."""

    def try_lease(self, name: str, owner: str, seconds: float) -> bool:
        """Take or keep the named lease for `seconds`: True if `owner` now holds it. One
        statement, fenced by the holder being `owner` or its lease having run out, so
        at most one owner holds it at a time."""

    # -- state machines ----------------------------------------------------------------------
    def machine(self, run_id: str) -> tuple[str | None, str | None, int]:
        """A machine run's (state, data JSON, transitions so far), read under the run's row
        lock (PostgreSQL `FOR UPDATE`) so the next transition is decided from the latest
        state. (None, None, 0) before the first transition or for an unknown run. One
        statement."""

    def transition(self, run_id: str, seq: int, from_state: str | None, to_state: str,
                   trigger: str, event_id: str | None, data_before: str | None,
                   data_after: str) -> None:
        """Move the machine to `to_state` with `data_after` as its transition number `seq`
        and keep the transition in its history, stamped with the database's clock. Fenced
        by the run being at transition `seq - 1` (it raises otherwise: a lost race, which
        the row lock of `machine` rules out). One statement on PostgreSQL, two on
        SQLite."""

    def transitions(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """A run's first `limit` transitions, oldest first. One statement, a read."""

    def add_event(self, run_id: str, name: str, event_id: str | None,
                  payload: str) -> tuple[int, bool]:
        """Store an event sent to a run, pending: (its seq, True). With an `event_id` the
        run has already, (the stored event's seq, False): one event, however often sent.
        At most two statements."""

    def open_events(self, run_id: str) -> list[tuple[int, str, str | None, str, str]]:
        """(seq, name, event id, payload, status) of a run's pending and deferred events,
        oldest first. One statement, a read."""

    def settle_event(self, seq: int, status: str, state: str | None) -> bool:
        """Mark an open event `consumed` (taken by `state`), `ignored`, `unhandled` or
        `deferred`; fenced by its being open, so an event is taken at most once. One
        statement."""

    def events_of(self, run_id: str, limit: int) -> list[dict[str, Any]]:
        """A run's events, oldest first. One statement, a read."""

    def event(self, run_id: str, seq: int | None, event_id: str | None) -> dict[str, Any] | None:
        """One event of a run (as `events_of` gives it), by its seq, or else by the
        sender's event id. One statement, a read."""

    def runs_with_pending_events(self, fingerprints: Sequence[str], limit: int) -> list[str]:
        """Unfinished runs of the definitions `fingerprints` with pending events (not
        deferred). One statement, a read."""

    # -- event chains: topics, subscriptions, lanes ---------------------------------------------
    def subscriptions(self, gate: bool = True) -> list[SubscriptionRow]:
        """Every subscription, read under the topic gate's shared lock (PostgreSQL `FOR
        SHARE`; `gate=False` for a read-only look): whoever adds a subscription takes the
        gate exclusively, so an event stored in this transaction is either seen by that
        subscription or older than it. One statement."""

    def put_subscription(self, name: str, pattern: str, fingerprint: str) -> bool:
        """Add a subscription that takes events stored after this transaction (its
        `since_seq` is the newest seq), or change an existing one's pattern and definition,
        keeping its position; returns whether anything changed. Takes the gate
        exclusively, only when something changes. Needs the caller's transaction."""

    def replay_subscription(self, name: str, since: float) -> int | None:
        """Have the sweeper deliver to `name`, in order, the events stored from `since` it
        has not had (and none at emit time until it caught up). Returns how many events lie
        after the replay's start, None for no such subscription. Takes the gate
        exclusively; needs the caller's transaction."""

    def close_topic_gate(self) -> None:
        """Take the topic gate exclusively: no event is stored (and no subscription read
        for one) until this transaction ends. One statement, a lock."""

    def advance_replay(self, name: str, after: int, caught_up: bool) -> None:
        """A replay delivered the events up to seq `after`; `caught_up`: none is left, so
        the subscription is delivered at emit time again (the caller holds the gate, so no
        emit ran between its last read and this). Fenced by the replay being on."""

    def add_topic_event(self, event_id: str, topic: str, key: str | None, payload: str,
                        correlation_id: str, cause_run: str | None,
                        cause_step: str | None) -> tuple[int, float] | None:
        """Store an event; its (seq, created_at), or None when an event with this id exists
        (emitting twice stores one). One statement: the unique id is the check."""

    def topic_event(self, event_id: str | None = None,
                    seq: int | None = None) -> TopicEvent | None:
        """One stored event, by its id or its seq. One statement, a read."""

    def topic_events_after(self, seq: int, limit: int) -> list[TopicEvent]:
        """At most `limit` events stored after `seq`, in seq order. One statement, a read."""

    def correlated_events(self, correlation_id: str, limit: int) -> list[TopicEvent]:
        """The events of a correlation id, oldest first. One statement, a read."""

    def run_correlation(self, run_id: str) -> str | None:
        """The correlation id of a run (the one it inherited, else its own id); None for no
        such run. One statement, a read."""

    def correlated_runs(self, correlation_id: str, limit: int) -> list[dict[str, Any]]:
        """Runs of a correlation id, the run whose id it is included, oldest first, with
        their triggering event's seq and parent. One statement, a read."""

    def enter_lane(self, subscription: str, key: str) -> tuple[int, int]:
        """A keyed delivery joins its lane: (its position, open deliveries of the lane with
        it); 1 open means it starts now. One statement, which locks the lane's row, so
        deliveries of one key join one at a time."""

    def queue_in_lane(self, subscription: str, key: str, position: int, event_seq: int,
                      run_id: str) -> None:
        """A delivery waits in its lane at `position`; its run, `run_id`, starts when the
        deliveries before it have ended. One statement."""

    def leave_lane(self, run_id: str) -> tuple[str, int, str] | None:
        """A keyed delivery's run ended: it leaves its lane, once (fenced by the run still
        holding it), and the lane's next queued delivery is taken off the queue, returned
        as (subscription, event seq, run id) for the caller to start. Needs the caller's
        transaction."""

    def queued_deliveries(self, event_seqs: Sequence[int]) -> list[dict[str, Any]]:
        """Deliveries of these events waiting in a lane (subscription, key, position, event
        seq, run id). One statement, a read."""

    def known_deliveries(self, run_ids: Sequence[str]) -> set[str]:
        """Which of these delivery run ids exist, as runs or queued in a lane (a replay
        delivers the others). One statement, a read."""

    # -- waiting for events: wp.wait_for steps, machines taking a topic's events -----------
    def lock_topic(self, topic: str) -> None:
        """Hold off emits of `topic` from looking for waits until this transaction ends
        (PostgreSQL: the topic's advisory lock, exclusively; SQLite's writer lock already
        does). Taken before a wait looks for stored events, so an event is either found
        by the wait or finds it."""

    def wait_shapes(self, topic: str) -> list[str]:
        """The field lists something waits on for events of `topic` (PostgreSQL: sharing
        the topic's advisory lock until the transaction ends). One statement, a read."""

    def add_topic_wait(self, topic: str, fields: str, digest: str, run_id: str,
                       step_id: int | None) -> None:
        """A step waits for an event of `topic` whose `fields` hold values with `digest`
        (again, for a step that waits anew); with `step_id` None a machine run does, once
        per topic (this replaces what it waited on). Needs the caller's transaction."""

    def topic_waiters(self, topic: str, fields: str,
                      digest: str) -> list[tuple[str, int | None]]:
        """(run id, step id, None for a machine run) of what waits for such an event,
        oldest first. One statement, a read."""

    def drop_topic_waits(self, step_ids: Sequence[int]) -> None:
        """These steps wait for no event any more. One statement per step."""

    def topic_events_since_run(self, topic: str, run_id: str, after_seq: int,
                               limit: int) -> list[TopicEvent]:
        """At most `limit` events of `topic` stored since run `run_id` was created and after
        `after_seq`, in order. One statement, a read."""

    # -- schedules ---------------------------------------------------------------------------
    def put_schedule(self, name: str, fingerprint: str, spec: str, next_at: float) -> bool:
        """Add a schedule, or change one whose definition or spec changed (its next fire
        then `next_at`); returns whether anything changed. One statement."""

    def drop_schedules(self, names: Sequence[str]) -> list[str]:
        """Remove these schedules, returning the names that were there. One statement."""

    def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        """Unpaused schedules due at `now`, soonest first (PostgreSQL: locked, skipping
        those locked by another worker). One statement."""

    def advance_schedule(self, name: str, was: float, next_at: float | None,
                         fired_at: float | None, run_id: str | None) -> bool:
        """Move a schedule's next fire from `was` to `next_at`, recording a fire's due time
        and run; fenced by `was`, so one due time moves once. One statement."""

    def schedules(self) -> list[ScheduleRow]:
        """Every schedule, by name. One statement, a read."""

    def pause_schedule(self, name: str, paused: bool, next_at: float | None) -> bool:
        """Pause a schedule, or resume it with its next fire at `next_at`; whether it
        exists. One statement."""

    # -- the HTTP API ----------------------------------------------------------------------------
    def api_tokens(self) -> dict[str, str]:
        """The stored API tokens: SHA-256 digest to name. One statement, a read."""

    def add_api_token(self, name: str, digest: str) -> bool:
        """Store a token's digest under `name`; False when the name is taken. One
        statement."""

    def roll_up_metrics(self, lag: float, batch: int) -> int:
        """Add the steps that finished more than `lag` seconds ago (at most `batch` past
        the last mark) to the totals `metrics` reads; returns how many were added. Locks
        the mark: two at once take turns."""

    def metrics(self) -> dict[str, Any]:
        """The store's state for `/metrics`: `open` and `finished` [(definition, task,
        status, steps, attempts, retries)] (finished: every finish counted once, from the
        totals and live past their mark), `durations` [(definition, task, cumulative
        counts per DURATION_BUCKETS bound, observed, seconds)] of the attempts that ended
        succeeded or failed steps, `dead_letters` [(task, status, count)], `ready`
        and `oldest_ready` (seconds), `timers_due`, `expiries` {lost|timeout|heartbeat:
        count}, `deliveries_pending` {handler: count}. A few statements, reads; its cost
        follows open and recently finished steps, not all stored."""
