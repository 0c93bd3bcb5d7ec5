"""Dead letters, workers, limits and schedules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ..masking import mask
from .models import Replay
from .runs import caller, engine, masked_input

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.get("/dead-letters", summary="Dead letters, newest first")
def dead_letters(
    request: Request,
    status: Literal["dead", "replayed", "closed", "all"] = "dead",
    run: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    eng = engine(request)
    run_id = eng.resolve(run) if run is not None else None
    return list(mask(eng.dead_letters(None if status == "all" else status, run_id, limit)))


@router.get("/dead-letters/{letter}", summary="A dead letter with every attempt's error")
def dead_letter(letter: int, request: Request) -> dict[str, Any]:
    found = engine(request).dead_letter(letter)
    return {**mask(found), "input": masked_input(found["input"], found["task"]),
            "replay_input": masked_input(found["replay_input"], found["task"])}


@router.post("/dead-letters/{letter}/replay",
             summary="Run a dead letter's step again (optionally with a patched input)")
def replay(letter: int, body: Replay, request: Request) -> dict[str, Any]:
    run_id = engine(request).replay(letter, body.input, by=caller(request))
    return {"letter": letter, "run_id": run_id, "by": caller(request)}


@router.get("/workers", summary="The live workers")
def workers(request: Request) -> list[dict[str, Any]]:
    return engine(request).workers()


@router.get("/limits", summary="Every rate and concurrency limit, and its use")
def limits(request: Request) -> list[dict[str, Any]]:
    return engine(request).limits()


@router.get("/schedules", summary="Scheduled flows and their next fire")
def schedules(request: Request) -> list[dict[str, Any]]:
    return engine(request).schedules()


@router.post("/schedules/{name}/pause", summary="Stop a schedule firing")
def pause(name: str, request: Request) -> dict[str, Any]:
    return {"schedule": engine(request).pause_schedule(name), "paused": True}


@router.post("/schedules/{name}/resume", summary="Fire a paused schedule again")
def resume(name: str, request: Request) -> dict[str, Any]:
    return {"schedule": engine(request).resume_schedule(name), "paused": False}
