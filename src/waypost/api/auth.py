"""Who may call the API: a bearer token, named, so what a request approves, skips or
replays is recorded under that name.

Tokens come from `WAYPOST_API_TOKEN` (`SECRET`, or `name=SECRET,name2=SECRET2`), else
from the store: the first start generates one, prints it once, and keeps only its SHA-256
digest. Every path needs one but the exact liveness path; comparing digests in constant
time keeps a token from being guessed byte by byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import InputError
from ..store import Store

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The one path served without a token: is the process up.
LIVENESS = "/healthz"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def from_env(text: str) -> dict[str, str]:
    """`SECRET` (named "api") or `name=SECRET,...`: digest to name."""
    found: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, secret = part.partition("=")
        name, secret = (name, secret) if sep else ("api", name)
        if not name or len(secret) < 16:
            raise InputError("WAYPOST_API_TOKEN is SECRET or name=SECRET,... and each secret "
                             "is at least 16 characters")
        found[digest(secret)] = name
    if not found:
        raise InputError("WAYPOST_API_TOKEN is set but holds no token")
    return found


def stored_or_new(store: Store) -> tuple[dict[str, str], str | None]:
    """The tokens stored at first start, or a new one: (digests, the new token to print
    once, or None)."""
    known = store.read(lambda tx: tx.api_tokens())
    if known:
        return known, None
    token = secrets.token_urlsafe(32)
    if not store.transact(lambda tx: tx.add_api_token("admin", digest(token))):
        return store.read(lambda tx: tx.api_tokens()), None  # another server was first
    return {digest(token): "admin"}, token


class Auth:
    """ASGI middleware: a request without a known bearer token gets 401, before any route
    (the OpenAPI document, the docs and streams included). The caller's token name is put
    in `scope["state"]["caller"]`; None when auth is off."""

    def __init__(self, app: ASGIApp, tokens: dict[str, str] | None) -> None:
        self.app = app
        self.tokens = tokens  # None: no auth (`--no-auth`)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == LIVENESS:
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if self.tokens is None:
            state["caller"] = None
            await self.app(scope, receive, send)
            return
        name = self._caller(scope)
        if name is None:
            await _reject(send, 401, "Unauthorized",
                          "a bearer token is needed: Authorization: Bearer TOKEN")
            return
        state["caller"] = name
        await self.app(scope, receive, send)

    def _caller(self, scope: Scope) -> str | None:
        assert self.tokens is not None
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token:
                    return None
                wanted = digest(token.strip())
                for known, name in self.tokens.items():
                    if hmac.compare_digest(known, wanted):
                        return name
                return None
        return None


async def _reject(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyCap:
    """ASGI middleware: a request body over `limit` bytes gets 413, whether it says its
    length or streams it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                await _reject(send, 413, "PayloadTooLarge",
                              f"a request body is at most {self.limit} bytes")
                return
        seen = 0
        started = False

        async def capped() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, capped, tracking)
        except _TooLarge:
            if not started:
                await _reject(send, 413, "PayloadTooLarge",
                              f"a request body is at most {self.limit} bytes")


class _TooLarge(BaseException):
    """Raised from `receive`: a BaseException, so the app's error handlers (which catch
    Exception and would answer 500) let it through to `BodyCap`."""
