"""The store's domain verbs as SQL shared by both dialects, one module per concern.

See `core` for how statements are written and fenced; `SqlTx` is every verb together.
"""

from __future__ import annotations

from .api import ApiVerbs
from .claims import ClaimVerbs
from .compensation import CompensationVerbs
from .core import OPEN_RUN, RUN_COLUMNS, STEP_COLUMNS, SqlCore, marks
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


class SqlTx(RunVerbs, StepVerbs, ClaimVerbs, WaitVerbs, LetterVerbs, CompensationVerbs,
            LimitVerbs, WorkerVerbs, MachineVerbs, TopicVerbs, TopicWaitVerbs, ScheduleVerbs,
            ApiVerbs, MetricVerbs):
    """Every verb, on one connection inside one transaction."""


__all__ = ["OPEN_RUN", "RUN_COLUMNS", "STEP_COLUMNS", "SqlCore", "SqlTx", "marks"]
