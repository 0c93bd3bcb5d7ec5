-- waypost schema 20: a run's `flow` column names a flow, a machine or a handler alike, so it
-- is called `definition` (the name `Engine.start(definition)` and the metric tables use).
-- Renamed in place: every row keeps its value, and the index is renamed, not rebuilt.
ALTER TABLE runs RENAME COLUMN flow TO definition;
ALTER INDEX runs_flow RENAME TO runs_definition
