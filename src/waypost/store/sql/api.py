"""The HTTP API's own rows: its tokens, kept as digests."""

from __future__ import annotations

from .core import SqlCore


class ApiVerbs(SqlCore):
    def api_tokens(self) -> dict[str, str]:
        rows = self.execute("SELECT digest, name FROM api_tokens").fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def add_api_token(self, name: str, digest: str) -> bool:
        row = self.execute("INSERT INTO api_tokens (name, digest, created_at) VALUES "
                           "(?, ?, {now}) ON CONFLICT (name) DO NOTHING RETURNING name",
                           (name, digest)).fetchone()
        return row is not None
