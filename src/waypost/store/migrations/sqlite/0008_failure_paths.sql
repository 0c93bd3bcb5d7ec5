-- waypost schema 8: dead letters, retry budgets, and steps that wait for a timer or a person.
-- A dead letter keeps a step's input as it was when the step died; a replay may patch it.
CREATE TABLE dead_letters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id        TEXT NOT NULL REFERENCES runs(id),
    step_id       INTEGER NOT NULL REFERENCES steps(id),
    step          TEXT NOT NULL,
    task          TEXT NOT NULL,
    input         TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL,
    status        TEXT NOT NULL,
    created_at    REAL NOT NULL,
    replayed_at   REAL,
    replay_input  TEXT
);
CREATE INDEX dead_letters_status ON dead_letters(status, id);
CREATE INDEX dead_letters_run ON dead_letters(run_id);
-- Retries of a task spent in the current window, across all runs (retry_budget=).
CREATE TABLE retry_budgets (
    task          TEXT PRIMARY KEY,
    window_start  REAL NOT NULL,
    used          INTEGER NOT NULL,
    refused       INTEGER NOT NULL,
    refused_total INTEGER NOT NULL
);
-- Gates and sleeps wait in `waiting`, escalated steps in `needs_attention`; ready_at is when
-- the sweeper acts on them (timer due, gate or escalation timed out), NULL for never.
CREATE INDEX steps_waiting ON steps(ready_at) WHERE status IN ('waiting', 'needs_attention')
