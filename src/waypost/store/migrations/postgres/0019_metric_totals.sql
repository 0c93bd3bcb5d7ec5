-- waypost schema 19: what /metrics counts is rolled up as it goes, so a scrape reads the
-- steps that finished since the last one instead of every step ever stored. A scrape adds
-- the steps that finished before its cut (the database clock less a lag that outlasts any
-- transaction) to metric_totals and moves the cut on; what finished after the cut is
-- counted live from steps_finished. Expired attempts are few: a partial index counts them.
CREATE TABLE metric_totals (
    definition TEXT NOT NULL,
    task       TEXT NOT NULL,
    status     TEXT NOT NULL,
    steps      BIGINT NOT NULL,
    attempts   BIGINT NOT NULL,
    retries    BIGINT NOT NULL,
    PRIMARY KEY (definition, task, status)
);
-- How long the attempt that ended each succeeded or failed step took, as a histogram per
-- definition and task: `buckets` is a JSON list of counts, one per bound in the code's
-- DURATION_BUCKETS (cumulative, as Prometheus has them).
CREATE TABLE metric_durations (
    definition TEXT NOT NULL,
    task       TEXT NOT NULL,
    buckets    TEXT NOT NULL,
    observed   BIGINT NOT NULL,
    seconds    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (definition, task)
);
CREATE TABLE metric_marks (
    name TEXT PRIMARY KEY,
    mark DOUBLE PRECISION NOT NULL
);
CREATE INDEX steps_finished ON steps(finished_at) WHERE finished_at IS NOT NULL;
-- The mark's row exists from the start, so the first two scrapers at once take turns on it.
INSERT INTO metric_marks (name, mark) VALUES ('steps', -1);
CREATE INDEX attempts_expired ON attempts(outcome) WHERE outcome IN ('lost', 'timeout', 'heartbeat')
