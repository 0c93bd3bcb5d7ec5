-- waypost schema 15: event chains. An event published on a topic is stored once per id
-- (the producer's, or one drawn when it was emitted), with the correlation id it inherited
-- and what emitted it (a step of a run, or nothing: engine code).
CREATE TABLE topic_events (
    seq            BIGSERIAL PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    topic          TEXT NOT NULL,
    key            TEXT,
    payload        TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    cause_run      TEXT,
    cause_step     TEXT,
    created_at     DOUBLE PRECISION NOT NULL
);
CREATE INDEX topic_events_topic ON topic_events(topic, seq);
CREATE INDEX topic_events_time ON topic_events(created_at);
CREATE INDEX topic_events_correlation ON topic_events(correlation_id);
CREATE INDEX topic_events_cause ON topic_events(cause_run) WHERE cause_run IS NOT NULL
;
-- Who listens: a handler (or a definition started by events) and the topic pattern it
-- takes. Events with a seq above `since_seq` are delivered to it; while `replay_seq` is set
-- the events after it are delivered in order by the sweeper, and none at emit time.
CREATE TABLE subscriptions (
    name        TEXT PRIMARY KEY,
    pattern     TEXT NOT NULL,
    fingerprint TEXT NOT NULL REFERENCES definitions(fingerprint),
    since_seq   BIGINT NOT NULL,
    replay_seq  BIGINT,
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL
);
-- One row: emitting reads the subscriptions under its shared lock, adding a subscription or
-- ending a replay takes it exclusively, so an event is either seen by a subscription or
-- older than it.
CREATE TABLE topic_gate (
    id      INTEGER PRIMARY KEY,
    version INTEGER NOT NULL
);
INSERT INTO topic_gate (id, version) VALUES (1, 0)
;
-- A delivery is a run of its subscription's definition, started by an event. Deliveries
-- of events with the same key to the same subscription run one at a time, in the order
-- they were emitted: a lane counts them, and queues those waiting for the one before.
CREATE TABLE delivery_lanes (
    subscription TEXT NOT NULL,
    key          TEXT NOT NULL,
    tail         BIGINT NOT NULL,
    open         INTEGER NOT NULL,
    PRIMARY KEY (subscription, key)
);
CREATE TABLE lane_queue (
    subscription TEXT NOT NULL,
    key          TEXT NOT NULL,
    position     BIGINT NOT NULL,
    event_seq    BIGINT NOT NULL REFERENCES topic_events(seq),
    run_id       TEXT NOT NULL,
    PRIMARY KEY (subscription, key, position)
);
CREATE INDEX lane_queue_event ON lane_queue(event_seq)
;
-- Runs carry the correlation id they inherited (NULL: their own id), the event that
-- started them, and the lane a keyed delivery holds until it ends.
ALTER TABLE runs ADD COLUMN correlation_id TEXT;
ALTER TABLE runs ADD COLUMN trigger_event BIGINT;
ALTER TABLE runs ADD COLUMN lane TEXT;
CREATE INDEX runs_correlation ON runs(correlation_id) WHERE correlation_id IS NOT NULL;
CREATE INDEX runs_trigger ON runs(trigger_event) WHERE trigger_event IS NOT NULL
