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
