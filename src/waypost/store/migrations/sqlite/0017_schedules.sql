-- waypost schema 17: schedules. A flow declared with schedule= (cron) or every= is started
-- at each due time by whichever worker sees it first: `next_at` moves on in the statement
-- that checks it, and each fire's run has the key schedule:NAME:TIME, so a due time fires
-- at most once however many workers look.
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL REFERENCES definitions(fingerprint),
    spec        TEXT NOT NULL,
    next_at     REAL,
    last_at     REAL,
    last_run    TEXT,
    paused      INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX schedules_due ON schedules(next_at) WHERE paused = 0
