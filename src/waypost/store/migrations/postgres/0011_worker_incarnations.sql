-- waypost schema 11: worker incarnations. A worker process draws an incarnation id when it
-- registers: a process restarted under the same name is another incarnation and does not
-- inherit the leases of the one that died. `boot_id` and `pid_ns` say which pid space `pid`
-- belongs to (liveness by pid only within the same one); `lease` is the lease it renews
-- every third of, so a reader can tell a silent worker from a live one.
ALTER TABLE workers ADD COLUMN incarnation TEXT;
ALTER TABLE workers ADD COLUMN boot_id TEXT;
ALTER TABLE workers ADD COLUMN pid_ns TEXT;
ALTER TABLE workers ADD COLUMN lease DOUBLE PRECISION;
