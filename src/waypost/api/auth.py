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
#: The dashboard's sign-in page (a form that takes a token: it shows no data).
LOGIN = "/login"
#: The cookie the dashboard keeps a signed-in browser's token in.
COOKIE = "waypost_token"
_SAFE = ("GET", "HEAD", "OPTIONS")


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
    """ASGI middleware: a request without a known token gets 401, before any route (the
    OpenAPI document, the docs, the dashboard and its live updates included). The token
    is a bearer header, or the dashboard's cookie; a cookie alone cannot make a change
    unless the request also says `HX-Request` (which another site's form cannot send), so a
    signed-in browser cannot be made to act by another page. The caller's token name is
    put in `scope["state"]["caller"]`; None when auth is off."""

    def __init__(self, app: ASGIApp, tokens: dict[str, str] | None) -> None:
        self.app = app
        self.tokens = tokens  # None: no auth (`--no-auth`)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in (LIVENESS, LOGIN):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        if self.tokens is None:
            state["caller"] = None
            await self.app(scope, receive, send)
            return
        name = self._caller(scope)
        if name is None and scope["method"] == "GET" and (
                scope["path"] == "/" or scope["path"].startswith("/ui/")):
            await _redirect(send, LOGIN)  # a browser: to the sign-in page, which shows nothing
            return
        if name is None:
            await _reject(send, 401, "Unauthorized",
                          "a bearer token is needed: Authorization: Bearer TOKEN")
            return
        state["caller"] = name
        await self.app(scope, receive, send)

    def _caller(self, scope: Scope) -> str | None:
        headers = dict(scope.get("headers", []))
        if b"authorization" in headers:
            scheme, _, token = headers[b"authorization"].decode("latin-1").partition(" ")
            return self.name_of(token.strip()) if scheme.lower() == "bearer" else None
        token = _cookie(headers.get(b"cookie", b"").decode("latin-1"))
        if token is None:
            return None
        if scope["method"] not in _SAFE and headers.get(b"hx-request") != b"true":
            return None
        return self.name_of(token)

    def name_of(self, token: str) -> str | None:
        return token_name(self.tokens or {}, token)


def token_name(tokens: dict[str, str], token: str) -> str | None:
    """The name of a known token, or None (every digest compared, in constant time)."""
    if not token:
        return None
    wanted = digest(token)
    found = None
    for known, name in tokens.items():
        if hmac.compare_digest(known, wanted):
            found = name
    return found


def _cookie(header: str) -> str | None:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


async def _redirect(send: Send, to: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", to.encode()), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


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
