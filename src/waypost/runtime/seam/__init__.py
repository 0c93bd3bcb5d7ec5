"""The seam between the front-ends and the runtime: the one place a front-end imports the
runtime from (tests/unit/test_guards.py holds that line).

A front-end compiles a definition to a `Driver` (driver.py), whose every decision is
data: it is told facts (facts.py) and answers decisions (decisions.py); what a step needs
at run time is its `StepPolicy` (policy.py); how a stored definition is loaded back into
its front-end's driver is registry.py.
"""

from .decisions import (
    DECIDE_EVENT,
    RESERVED_EVENTS,
    AwaitEvent,
    Block,
    Consume,
    DecideLater,
    Decision,
    EndStep,
    FailRun,
    FanOut,
    FinishRun,
    Insert,
    MakeReady,
    Release,
    StartChild,
    Transition,
    WaitUntil,
    failed_by,
)
from .driver import Definition, Driver, decide
from .facts import (
    Fact,
    ItemsEnded,
    RunFacts,
    Settled,
    SignalArrived,
    Started,
    StepFailed,
    StepsFreed,
    StepSucceeded,
)
from .policy import StepPolicy, encode_call
from .registry import load_driver, register_kind

__all__ = [
    "DECIDE_EVENT",
    "RESERVED_EVENTS",
    "AwaitEvent",
    "Block",
    "Consume",
    "DecideLater",
    "Decision",
    "Definition",
    "Driver",
    "EndStep",
    "Fact",
    "FailRun",
    "FanOut",
    "FinishRun",
    "Insert",
    "ItemsEnded",
    "MakeReady",
    "Release",
    "RunFacts",
    "Settled",
    "SignalArrived",
    "StartChild",
    "Started",
    "StepFailed",
    "StepPolicy",
    "StepSucceeded",
    "StepsFreed",
    "Transition",
    "WaitUntil",
    "decide",
    "encode_call",
    "failed_by",
    "load_driver",
    "register_kind",
]
