-- waypost schema 16: waiting for an event. A flow's wp.wait_for step (step_id), or a
-- machine run taking a topic's events (step_id NULL), waits here for an event on `topic`
-- whose payload fields `fields` (a comma-separated list of paths) hold the values whose
-- digest is `digest`: an emit finds its waiters by an index, not by a scan.
CREATE TABLE topic_waits (
    id         BIGSERIAL PRIMARY KEY,
    topic      TEXT NOT NULL,
    fields     TEXT NOT NULL,
    digest     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    step_id    BIGINT UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX topic_waits_match ON topic_waits(topic, fields, digest);
CREATE UNIQUE INDEX topic_waits_listener ON topic_waits(run_id, topic) WHERE step_id IS NULL
;
-- The field lists waited on per topic, so an emit computes one digest per list. Never
-- removed: there are as many as the code has different waits.
CREATE TABLE topic_wait_shapes (
    topic  TEXT NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (topic, fields)
);
