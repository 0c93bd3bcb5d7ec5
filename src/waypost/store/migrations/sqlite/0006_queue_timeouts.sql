-- waypost schema 6: a step may wait in `ready` at most queue_timeout seconds for a worker.
ALTER TABLE steps ADD COLUMN queue_timeout REAL
