-- waypost schema 10: rate and concurrency limits shared by every worker of the store.
-- A limit's row holds its definition (written by the workers whose tasks use it) and is
-- what claims of its steps lock, so they are counted one at a time.
CREATE TABLE limits (
    name        TEXT PRIMARY KEY,
    rate        TEXT,
    rate_count  INTEGER,
    rate_period REAL,
    concurrency INTEGER,
    updated_at  REAL NOT NULL
);
-- One row per (limit, claimed attempt). The rows of the last rate period are the sliding
-- window; a row whose step still runs under its lease token holds a concurrency slot.
CREATE TABLE limit_grants (
    limit_name  TEXT NOT NULL,
    step_id     INTEGER NOT NULL,
    lease_token TEXT NOT NULL,
    granted_at  REAL NOT NULL
);
CREATE INDEX limit_grants_recent ON limit_grants(limit_name, granted_at)
