-- waypost schema 20: a run's `flow` column names a flow, a machine or a handler alike, so it
-- is called `definition` (the name `Engine.start(definition)` and the metric tables use).
-- Renamed in place: every row keeps its value. SQLite cannot rename an index, so its index
-- is built again under the new name.
ALTER TABLE runs RENAME COLUMN flow TO definition;
DROP INDEX runs_flow;
CREATE INDEX runs_definition ON runs(definition, created_at)
