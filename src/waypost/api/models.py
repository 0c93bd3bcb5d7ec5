"""Request bodies. Pydantic checks their shape (a wrong one is 422, with where); what
they mean (a payload that does not fit a flow, a gate not waiting) the engine checks."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_TEXT = 1000


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRun(Body):
    definition: str = Field(min_length=1, max_length=_TEXT,
                            description="A registered flow or machine: its full name, or the "
                                        "part after the module when only one has it.")
    input: dict[str, Any] | None = None
    key: str | None = Field(None, max_length=_TEXT, description="Idempotency key.")
    deadline: float | None = Field(None, gt=0, description="Seconds from now.")


class Cancel(Body):
    reason: str = Field("cancelled through the API", max_length=_TEXT)


class Reason(Body):
    reason: str | None = Field(None, max_length=_TEXT)


class Rejection(Body):
    reason: str = Field(min_length=1, max_length=_TEXT)


class Skip(Body):
    output: Any = None


class SendEvent(Body):
    event: str = Field(min_length=1, max_length=_TEXT)
    payload: Any = None
    id: str | None = Field(None, max_length=_TEXT)


class Emit(Body):
    payload: Any = None
    key: str | None = Field(None, max_length=_TEXT)
    id: str | None = Field(None, max_length=_TEXT)


class Complete(Body):
    output: Any = None


class FailToken(Body):
    error: str = Field(min_length=1, max_length=_TEXT)


class Replay(Body):
    input: dict[str, Any] | None = Field(
        None, description='A patched input: {"args": [...], "kwargs": {...}}.')


class ReplayTopic(Body):
    since: float = Field(description="Unix seconds: the events stored from then on.")
