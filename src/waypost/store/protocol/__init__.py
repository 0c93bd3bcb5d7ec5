"""The store's contract: every verb the runtime calls on a transaction, and what it promises.

`Store.transact(fn)` hands `fn` a `Tx`; the runtime sees nothing else of the database (no
SQL, no connection). `SqlTx` (store/sql/) is the one implementation, shared by SQLite
and PostgreSQL. `Tx` is the union of one small protocol per concern, and each concern is
one module three times over: protocol/runs.py lists the verbs that store/sql/runs.py
implements and tests/contract/test_verbs_runs.py holds to their promise, on both
databases. tests/unit/test_store_protocol.py keeps each pair of verb lists equal.

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

from typing import Protocol

from .api import ApiVerbs
from .claims import ClaimVerbs
from .compensation import CompensationVerbs
from .core import CoreVerbs
from .letters import LetterVerbs
from .limits import LimitVerbs
from .machines import MachineVerbs
from .metrics import MetricVerbs
from .runs import RunVerbs
from .schedules import ScheduleVerbs
from .steps import StepVerbs
from .topic_waits import TopicWaitVerbs
from .topics import TopicVerbs
from .waits import WaitVerbs
from .workers import WorkerVerbs


class Tx(CoreVerbs, RunVerbs, StepVerbs, ClaimVerbs, WaitVerbs, LetterVerbs, CompensationVerbs,
         LimitVerbs, WorkerVerbs, MachineVerbs, TopicVerbs, TopicWaitVerbs, ScheduleVerbs,
         ApiVerbs, MetricVerbs, Protocol):
    """One transaction's verbs (see the module docstring for the terms)."""


#: Each concern's protocol, by the name of its module (here, in store/sql/ and in
#: tests/contract/test_verbs_<name>.py).
CONCERNS: dict[str, type] = {
    "api": ApiVerbs, "claims": ClaimVerbs, "compensation": CompensationVerbs,
    "core": CoreVerbs, "letters": LetterVerbs, "limits": LimitVerbs, "machines": MachineVerbs,
    "metrics": MetricVerbs, "runs": RunVerbs, "schedules": ScheduleVerbs, "steps": StepVerbs,
    "topic_waits": TopicWaitVerbs, "topics": TopicVerbs, "waits": WaitVerbs,
    "workers": WorkerVerbs,
}

__all__ = ["CONCERNS", "Tx"]
