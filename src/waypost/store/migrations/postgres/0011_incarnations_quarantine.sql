-- waypost schema 11: worker incarnations. A worker process draws an incarnation id when it
-- registers: a process restarted under the same name is another incarnation and does not
-- inherit the leases of the one that died. `boot_id` and `pid_ns` say which pid space `pid`
-- belongs to (liveness by pid only within the same one); `lease` is the lease it renews
-- every third of, so a reader can tell a silent worker from a live one.
ALTER TABLE workers ADD COLUMN incarnation TEXT;
ALTER TABLE workers ADD COLUMN boot_id TEXT;
ALTER TABLE workers ADD COLUMN pid_ns TEXT;
ALTER TABLE workers ADD COLUMN lease DOUBLE PRECISION;
-- A step lost in a crash beside other attempts is in quarantine (1): claimed only alone
-- (2 while so claimed). Only losses while alone count toward the lost-attempts limit.
ALTER TABLE steps ADD COLUMN quarantine INTEGER NOT NULL DEFAULT 0;
ALTER TABLE steps ADD COLUMN lost_alone INTEGER NOT NULL DEFAULT 0;
