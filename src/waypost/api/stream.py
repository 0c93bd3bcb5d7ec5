"""A run's live updates as server-sent events: the dashboard's run page and any client
follow a run without polling the API themselves. The server reads the run once per
`every` seconds (`Engine.progress`, two indexed reads) and sends an event only when
something a watcher follows changed (the run's status, a step's status or attempt count),
then `end` when the run has ended; details are one GET of the run away. The token
guards it like every route: the stream is under /api/v1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import codec
from ..errors import WaypostError
from .runs import engine

router = APIRouter(prefix="/api/v1", tags=["runs"])

#: A run in one of these may still change.
OPEN = ("pending", "running", "needs_attention", "compensating")
#: A comment this often keeps proxies from closing a quiet stream.
KEEP_ALIVE = 15.0


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {codec.dumps(data)}\n\n"


@router.get("/runs/{run_id}/stream", response_class=StreamingResponse,
            summary="A run's changes as server-sent events (`run`, then `end`; "
                    "`error` if the store cannot be read)",
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_run(run_id: str, request: Request,
                     every: Annotated[float, Query(ge=0.2, le=60.0)] = 1.0,
                     ) -> StreamingResponse:
    eng = engine(request)
    full = await run_in_threadpool(eng.resolve, run_id)  # an unknown run: 404, not a stream

    async def events() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        quiet = 0.0
        while True:
            try:
                now = await run_in_threadpool(eng.progress, full)
            except WaypostError as exc:  # the store went away: say so, and end the stream
                yield _event("error", {"type": type(exc).__name__, "message": str(exc)})
                return
            if now != last:
                yield _event("run", now)
                last, quiet = now, 0.0
            if now["status"] not in OPEN:
                yield _event("end", {"id": now["id"], "status": now["status"]})
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(every)
            quiet += every
            if quiet >= KEEP_ALIVE:
                yield ": still open\n\n"
                quiet = 0.0

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
