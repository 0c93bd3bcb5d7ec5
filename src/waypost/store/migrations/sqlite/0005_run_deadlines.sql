-- waypost schema 5: run deadlines. When deadline_at passes, the sweeper ends the run.
ALTER TABLE runs ADD COLUMN deadline_at REAL;
CREATE INDEX runs_deadline ON runs(deadline_at) WHERE deadline_at IS NOT NULL
