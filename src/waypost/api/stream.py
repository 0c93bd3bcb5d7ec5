"""A run's live updates as server-sent events: the dashboard's run page and any client
follow a run without polling the API themselves. One reader per run (and interval) per
server reads `Engine.progress` (two indexed reads) every `every` seconds, however many
watch it, and each watcher is sent an event only when something it follows changed (the
run's status, a step's status or attempt count), then `end` when the run has ended;
details are one GET of the run away. The token guards it like every route: the stream
is under /api/v1."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import codec
from ..errors import WaypostError
from ..runtime.engine import Engine
from ..statuses import OPEN_RUNS
from .runs import engine

router = APIRouter(prefix="/api/v1", tags=["runs"])

#: A comment this often keeps proxies from closing a quiet stream.
KEEP_ALIVE = 15.0
Event = tuple[str, dict[str, Any]]


@dataclass
class _Watch:
    """One run read for all who watch it at one interval."""
    queues: set[asyncio.Queue[Event]] = field(default_factory=set)
    last: dict[str, Any] | None = None
    reader: asyncio.Task[None] | None = None


class Hub:
    """The runs this server is reading for watchers. Lives on the event loop: joining,
    leaving and a reader's last look happen between awaits, so none can miss another."""

    def __init__(self, eng: Engine) -> None:
        self.engine = eng
        self.watches: dict[tuple[str, float], _Watch] = {}

    async def follow(self, run_id: str, every: float) -> AsyncGenerator[Event | None, None]:
        """The run's events for one watcher; None when it has been quiet for KEEP_ALIVE."""
        key = (run_id, every)
        watch = self.watches.get(key)
        if watch is None:
            watch = self.watches[key] = _Watch()
            watch.reader = asyncio.create_task(self._read(key, watch))
        queue: asyncio.Queue[Event] = asyncio.Queue()
        watch.queues.add(queue)
        if watch.last is not None:
            queue.put_nowait(("run", watch.last))
        try:
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEP_ALIVE)
                except TimeoutError:
                    yield None
                    continue
                yield event
                if event[0] != "run":
                    return
        finally:
            watch.queues.discard(queue)
            if not watch.queues and self.watches.get(key) is watch:
                del self.watches[key]
                if watch.reader is not None:
                    watch.reader.cancel()

    async def _read(self, key: tuple[str, float], watch: _Watch) -> None:
        run_id, every = key
        try:
            while True:
                try:
                    now = await run_in_threadpool(self.engine.progress, run_id)
                except WaypostError as exc:  # the run or the store went away: say so
                    self._send(watch, ("error", {"type": type(exc).__name__,
                                                 "message": str(exc)}))
                    return
                if now != watch.last:
                    watch.last = now
                    self._send(watch, ("run", now))
                if now["status"] not in OPEN_RUNS:
                    self._send(watch, ("end", {"id": now["id"], "status": now["status"]}))
                    return
                await asyncio.sleep(every)
        finally:
            if self.watches.get(key) is watch:
                del self.watches[key]

    @staticmethod
    def _send(watch: _Watch, event: Event) -> None:
        for queue in watch.queues:
            queue.put_nowait(event)


def hub(request: Request) -> Hub:
    found: Hub = request.app.state.hub
    return found


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {codec.dumps(data)}\n\n"


@router.get("/runs/{run_id}/stream", response_class=StreamingResponse,
            summary="A run's changes as server-sent events (`run`, then `end`; "
                    "`error` if the store cannot be read)",
            responses={200: {"content": {"text/event-stream": {}}}})
async def stream_run(run_id: str, request: Request,
                     every: Annotated[float, Query(ge=0.2, le=60.0)] = 1.0,
                     ) -> StreamingResponse:
    full = await run_in_threadpool(engine(request).resolve, run_id)  # unknown: 404
    events = hub(request).follow(full, every)

    async def lines() -> AsyncIterator[str]:
        async with contextlib.aclosing(events):
            async for event in events:
                yield ": still open\n\n" if event is None else _event(*event)

    return StreamingResponse(lines(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
