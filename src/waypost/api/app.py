"""The API application: routes, JSON errors, and the two guards in front of every route
(a token, and a cap on the body's size)."""

from __future__ import annotations

from fastapi import FastAPI

from .. import __version__
from ..runtime.engine import Engine
from . import chains, errors, metrics, runs, stream, system
from .auth import LIVENESS, Auth, BodyCap
from .dashboard import pages

#: Bytes a request body may have.
MAX_BODY = 1_000_000


def create_app(engine: Engine, tokens: dict[str, str] | None,
               max_body: int = MAX_BODY) -> FastAPI:
    """The ASGI app over `engine`. `tokens`: SHA-256 digest to name (auth.py); None serves
    without auth. The OpenAPI document is at /api/v1/openapi.json."""
    app = FastAPI(title="waypost", version=__version__,
                  description="Durable workflows: runs, steps, events, dead letters.",
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs",
                  redoc_url=None)
    app.state.engine = engine
    app.state.tokens = tokens
    app.state.hub = stream.Hub(engine)
    errors.install(app)
    for module in (runs, stream, chains, system, metrics, pages):
        app.include_router(module.router)

    @app.get(LIVENESS, tags=["health"], summary="Liveness: the only path with no token")
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(Auth, tokens=tokens)
    app.add_middleware(BodyCap, limit=max_body)  # added last: it runs first
    return app
