-- waypost schema 18: the HTTP API. Tokens are kept as their SHA-256 digests, named: what a
-- request does (approve, skip, replay) is recorded under its token's name.
CREATE TABLE api_tokens (
    name       TEXT PRIMARY KEY,
    digest     TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
-- The runs list pages by (created_at, id), newest first (runs_flow already serves it for
-- one definition).
CREATE INDEX runs_created ON runs(created_at, id)
