-- waypost schema 3: heartbeats. `heartbeat` is the interval a step's task promised,
-- `heartbeat_at` the last beat the database saw (a claim counts as one), with its details.
ALTER TABLE steps ADD COLUMN heartbeat DOUBLE PRECISION;
ALTER TABLE steps ADD COLUMN heartbeat_at DOUBLE PRECISION;
ALTER TABLE steps ADD COLUMN heartbeat_details TEXT;
