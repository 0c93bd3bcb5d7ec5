-- waypost schema 21: the table of messages sent to one machine run is called `signals`, the
-- runtime's name for them, so it is not confused with `topic_events` (events published on a
-- topic). Renamed in place: every stored signal keeps its seq, status and payload. SQLite
-- cannot rename an index, so the open signals' index is built again under the new name (its
-- unique key's index follows the table by itself).
ALTER TABLE events RENAME TO signals;
DROP INDEX events_open;
CREATE INDEX signals_open ON signals(run_id, seq) WHERE status IN ('pending', 'deferred')
