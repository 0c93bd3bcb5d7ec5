-- waypost schema 21: the table of messages sent to one machine run is called `signals`, the
-- runtime's name for them, so it is not confused with `topic_events` (events published on a
-- topic). Renamed in place: every stored signal keeps its seq, status and payload. Its
-- indexes, the constraints they back and its seq's sequence are renamed with it, not
-- rebuilt, so nothing in the schema still says `events`.
ALTER TABLE events RENAME TO signals;
ALTER INDEX events_open RENAME TO signals_open;
ALTER INDEX events_pkey RENAME TO signals_pkey;
ALTER INDEX events_run_id_event_id_key RENAME TO signals_run_id_event_id_key;
ALTER SEQUENCE events_seq_seq RENAME TO signals_seq_seq
