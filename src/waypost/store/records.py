"""Rows the store hands back to the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClaimedStep:
    """A step a worker now holds: `lease_token` fences everything it later reports;
    `completion_token` is set only for a step whose task completes externally; `solo`: the
    step is in quarantine (it was lost in a crash) and its worker runs nothing beside it."""

    id: int
    run_id: str
    name: str
    node: str
    kind: str
    task: str
    input: str
    attempts: int
    idempotency_key: str
    lease_token: str
    timeout: float | None
    heartbeat: float | None = None
    completion_token: str | None = None
    solo: bool = False


@dataclass(frozen=True)
class HeldStep:
    """What the fence check of a finishing attempt returns."""

    id: int
    run_id: str
    name: str
    node: str
    kind: str
    map_index: int | None
    attempts: int
    max_attempts: int


@dataclass(frozen=True)
class WorkerRow:
    """A registered worker incarnation. `boot_id` and `pid_ns` name the pid space of `pid`
    (None: unknown); `lease` is the lease it renews every third of."""

    id: str
    host: str
    pid: int
    incarnation: str | None
    boot_id: str | None
    pid_ns: str | None
    lease: float | None
    started_at: float
    heartbeat_at: float
    tasks: list[str]
    #: Machine definitions this worker's code has: name -> fingerprint.
    definitions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Expired:
    step_id: int
    run_id: str
    lease_token: str
    owner: str | None
    reason: str  # lost | timeout


@dataclass
class NewStep:
    """A step row to insert; `status` is pending (waiting on `waiting_on` others) or ready."""

    name: str
    node: str
    task: str
    kind: str  # task | map | item
    status: str  # pending | ready
    waiting_on: int
    max_attempts: int
    timeout: float | None
    input: str | None = None
    input_checksum: str | None = None
    map_index: int | None = None
    heartbeat: float | None = None
    queue_timeout: float | None = None


@dataclass(frozen=True)
class LimitRow:
    """A limit as stored: `rate_count` attempts may start per `rate_period` seconds,
    `concurrency` may run at once (None: no such bound)."""

    name: str
    rate: str | None
    rate_count: int | None
    rate_period: float | None
    concurrency: int | None


@dataclass(frozen=True)
class LimitUsage:
    """A limit's use, by the database's clock `now`: `granted` attempts started in the
    window, `running` hold a slot, and the window's `nth` newest grant (n = the rate),
    whose leaving the window frees the next grant."""

    granted: int
    running: int
    nth: float | None
    now: float


RunRow = dict[str, Any]
StepRow = dict[str, Any]


@dataclass(frozen=True)
class SubscriptionRow:
    """A definition that takes events of topics matching `pattern`: those with a seq above
    `since_seq`; while `replay_seq` is set, those after it are still to be delivered, in
    order, by the sweeper (and none at emit time)."""

    name: str
    pattern: str
    fingerprint: str
    since_seq: int
    replay_seq: int | None


@dataclass(frozen=True)
class ScheduleRow:
    """A schedule as stored: its definition, its spec (JSON: cron or every, zone, missed
    policy, input), and its next and last fire (the database's seconds)."""

    name: str
    fingerprint: str
    spec: str
    next_at: float | None
    last_at: float | None
    last_run: str | None
    paused: bool


@dataclass(frozen=True)
class TopicEvent:
    """An event as stored on its topic."""

    seq: int
    id: str
    topic: str
    key: str | None
    payload: str
    correlation_id: str
    cause_run: str | None
    cause_step: str | None
    created_at: float
