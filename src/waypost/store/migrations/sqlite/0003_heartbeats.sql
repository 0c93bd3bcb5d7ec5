-- waypost schema 3: heartbeats. `heartbeat` is the interval a step's task promised,
-- `heartbeat_at` the last beat the database saw (a claim counts as one), with its details.
ALTER TABLE steps ADD COLUMN heartbeat REAL;
ALTER TABLE steps ADD COLUMN heartbeat_at REAL;
ALTER TABLE steps ADD COLUMN heartbeat_details TEXT;
