-- waypost schema 1: definitions, runs, steps, attempts, workers, leases.
-- Times are Unix epoch seconds (REAL), always taken from the database's clock.
CREATE TABLE definitions (
    fingerprint TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  REAL NOT NULL
);
CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    flow           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL REFERENCES definitions(fingerprint),
    key            TEXT UNIQUE,
    status         TEXT NOT NULL,
    input          TEXT NOT NULL,
    input_checksum TEXT NOT NULL,
    output         TEXT,
    error          TEXT,
    open_steps     INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    started_at     REAL,
    finished_at    REAL
);
CREATE INDEX runs_status ON runs(status, created_at);
CREATE INDEX runs_flow ON runs(flow, created_at);
CREATE TABLE steps (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id           TEXT NOT NULL REFERENCES runs(id),
    name             TEXT NOT NULL,
    node             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    task             TEXT NOT NULL,
    map_index        INTEGER,
    status           TEXT NOT NULL,
    waiting_on       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout          REAL,
    ready_at         REAL,
    input            TEXT,
    input_checksum   TEXT,
    idempotency_key  TEXT NOT NULL,
    output           TEXT,
    error            TEXT,
    lease_owner      TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    timeout_at       REAL,
    started_at       REAL,
    finished_at      REAL,
    UNIQUE (run_id, name)
);
CREATE INDEX steps_ready ON steps(ready_at, id) WHERE status = 'ready';
CREATE INDEX steps_running ON steps(lease_expires_at) WHERE status = 'running';
CREATE INDEX steps_owner ON steps(lease_owner) WHERE status = 'running';
CREATE INDEX steps_node ON steps(run_id, node, map_index);
CREATE TABLE attempts (
    step_id     INTEGER NOT NULL REFERENCES steps(id),
    attempt     INTEGER NOT NULL,
    worker      TEXT,
    outcome     TEXT NOT NULL,
    error       TEXT,
    started_at  REAL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (step_id, attempt)
);
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at REAL NOT NULL
);
