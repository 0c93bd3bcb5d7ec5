"""Events on topics, traces, replays of a topic to a handler, and completion tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..masking import mask
from .models import Complete, Emit, FailToken, ReplayTopic
from .runs import engine

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.post("/topics/{topic}/events", status_code=201, summary="Emit an event on a topic")
def emit(topic: str, body: Emit, request: Request) -> dict[str, Any]:
    return engine(request).emit(topic, body.payload, key=body.key, id=body.id)


@router.get("/trace/{ident}", summary="What an event, run or correlation id set in motion")
def trace(ident: str, request: Request) -> dict[str, Any]:
    return dict(mask(engine(request).trace(ident)))


@router.post("/subscriptions/{handler}/replay",
             summary="Deliver to a handler the events since a time it has not had")
def replay_topic(handler: str, body: ReplayTopic, request: Request) -> dict[str, Any]:
    return {"handler": handler, "events_after": engine(request).replay_topic(handler,
                                                                              body.since)}


@router.post("/completions/{token}", summary="Finish a step another system completes")
def complete(token: str, body: Complete, request: Request) -> dict[str, Any]:
    return {"run_id": engine(request).complete(token, body.output)}


@router.post("/completions/{token}/fail", summary="Fail such a step (it is retried)")
def fail_token(token: str, body: FailToken, request: Request) -> dict[str, Any]:
    return {"run_id": engine(request).fail(token, body.error)}
