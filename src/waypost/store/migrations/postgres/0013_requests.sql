-- waypost schema 13: what each operator's request committed (complete, cancel, approve,
-- resume, ...), so a retry after a lost commit acknowledgement returns it instead of
-- failing ("token already used"). Rows older than a day are pruned by the sweeper.
CREATE TABLE requests (
    id         TEXT PRIMARY KEY,
    result     TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX requests_age ON requests(created_at)
