"""Errors as JSON: `{"error": {"type", "message"}}` with the status that says what went
wrong, never a stack trace. A malformed body is 400, a body of the wrong shape 422, an
unknown name 404, a conflict (an idempotency key reused with another input) 409."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from ..errors import (
    DefinitionError,
    IdempotencyConflict,
    InputError,
    StoreError,
    UnknownTargetError,
    WaypostError,
)

log = logging.getLogger("waypost.api")

STATUS: list[tuple[type[WaypostError], int]] = [
    (UnknownTargetError, 404), (IdempotencyConflict, 409), (InputError, 422),
    (DefinitionError, 422), (StoreError, 503)]


def error(status: int, kind: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status)


def install(app: FastAPI) -> None:
    @app.exception_handler(WaypostError)
    async def waypost_error(request: Request, exc: WaypostError) -> Response:
        status = next((s for kind, s in STATUS if isinstance(exc, kind)), 400)
        if request.method == "GET" and request.url.path.startswith("/ui/"):
            from .dashboard.pages import error_page  # a person's page: say it as a page

            return error_page(request, status, str(exc))
        return error(status, type(exc).__name__, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        if any(p.get("type") == "json_invalid" for p in problems):
            return error(400, "MalformedJSON", "the request body is not valid JSON")
        first = problems[0] if problems else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        message = f"{where}: {first.get('msg', 'invalid')}" if where else first.get(
            "msg", "invalid request")
        return error(422, "InvalidRequest", message,
                     problems=[{"at": [str(x) for x in p.get("loc", ())],
                                "message": p.get("msg")} for p in problems])

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        kind = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HTTPError")
        return error(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("the API failed on a request")
        return error(500, "InternalError", f"{type(exc).__name__}: the server failed; its "
                                           "log has the traceback")
