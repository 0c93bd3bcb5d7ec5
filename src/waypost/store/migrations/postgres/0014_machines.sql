-- waypost schema 14: state machines. A machine run's current state, its data (JSON) and
-- how many transitions it has made are kept on the run; every transition is kept in
-- `transitions`, with its trigger and the data before and after it.
ALTER TABLE runs ADD COLUMN state TEXT;
ALTER TABLE runs ADD COLUMN data TEXT;
ALTER TABLE runs ADD COLUMN transitions INTEGER NOT NULL DEFAULT 0;
CREATE TABLE transitions (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    seq         INTEGER NOT NULL,
    from_state  TEXT,
    to_state    TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    event_id    TEXT,
    data_before TEXT,
    data_after  TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
)
;
-- Events sent to a machine run, stored before `send` returns: pending until a state takes
-- them (consumed), or per the state's policy ignored, unhandled (recorded, shown) or
-- deferred (offered again after the next transition). An event id is unique per run.
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs(id),
    name        TEXT NOT NULL,
    event_id    TEXT,
    payload     TEXT NOT NULL,
    status      TEXT NOT NULL,
    state       TEXT,
    created_at  DOUBLE PRECISION NOT NULL,
    handled_at  DOUBLE PRECISION,
    UNIQUE (run_id, event_id)
);
CREATE INDEX events_open ON events(run_id, seq) WHERE status IN ('pending', 'deferred')
;
-- What machine definitions each worker has (name -> fingerprint), so `show` can say when a
-- live worker's code differs from the definition a run started with.
ALTER TABLE workers ADD COLUMN definitions TEXT
;
-- Child runs: a step (of a flow or a machine) that started another run and waits for it.
ALTER TABLE runs ADD COLUMN parent_run TEXT;
ALTER TABLE runs ADD COLUMN parent_step TEXT;
CREATE INDEX runs_parent ON runs(parent_run) WHERE parent_run IS NOT NULL
