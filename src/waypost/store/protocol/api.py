"""The HTTP API's own rows: its tokens, kept as digests."""

from __future__ import annotations

from typing import Protocol


class ApiVerbs(Protocol):
    def api_tokens(self) -> dict[str, str]:
        """The stored API tokens: SHA-256 digest to name. One statement, a read."""

    def add_api_token(self, name: str, digest: str) -> bool:
        """Store a token's digest under `name`; False when the name is taken. One
        statement."""
