"""Event chains: topics, `wp.emit`, `@wp.on` handlers and their deliveries."""

from ..vocabulary.outbox import emit
from .handler import Handler, on

__all__ = ["Handler", "emit", "on"]
