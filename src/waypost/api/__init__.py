"""The HTTP API over the store: `waypost serve`. JSON in and out, every route behind a
token but the liveness path (SECURITY.md)."""

from .app import create_app

__all__ = ["create_app"]
