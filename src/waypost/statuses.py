"""Every status a run or a step can be in, and the sets the engine decides by.

One module, so a rule such as "a run in these statuses may still change" is written once
and read the same by the runtime, the store's statements, the API and the dashboard. The
members are strings (`StrEnum`): they are stored, compared and printed as the words users
see (`pending`, `needs_attention`, ...).
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    NEEDS_ATTENTION = "needs_attention"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: A failed run whose succeeded steps are being undone (a saga).
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


class StepStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    #: A gate, a sleep, a wait for a topic event or a child run: no worker holds it.
    WAITING = "waiting"
    NEEDS_ATTENTION = "needs_attention"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Something it needs failed; independent branches go on.
    UPSTREAM_FAILED = "upstream_failed"
    CANCELLED = "cancelled"


#: Every status a run can be in, in the order lists offer them (as plain words: the CLI's
#: and the API's choices).
RUN_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)
#: A run still doing its own work: it takes signals, its children go on with it.
ACTIVE_RUNS = (RunStatus.PENDING, RunStatus.RUNNING, RunStatus.NEEDS_ATTENTION)
#: A run in one of these may still change (doing its work, or undoing it).
OPEN_RUNS = (*ACTIVE_RUNS, RunStatus.COMPENSATING)
#: A run that ended in one of these ended without its output.
FAILED_RUNS = (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.COMPENSATED,
               RunStatus.COMPENSATION_FAILED)
#: What `resume` reopens.
REOPENABLE_RUNS = (RunStatus.FAILED, RunStatus.CANCELLED)
#: Runs whose effects are being or were undone: continuing them would redo half of it.
UNDONE_RUNS = (RunStatus.COMPENSATING, RunStatus.COMPENSATED, RunStatus.COMPENSATION_FAILED)

#: A step in one of these has not ended.
OPEN_STEPS = (StepStatus.PENDING, StepStatus.READY, StepStatus.RUNNING, StepStatus.WAITING,
              StepStatus.NEEDS_ATTENTION)


def sql_list(statuses: tuple[StrEnum, ...]) -> str:
    """`('a', 'b')`, for a statement's `IN`: the words are constants, never user input."""
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"
