-- waypost schema 2: each worker records the tasks it serves, so a step that no live
-- worker can run says so in `waypost show` instead of waiting silently.
ALTER TABLE workers ADD COLUMN tasks TEXT;
