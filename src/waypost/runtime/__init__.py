"""The one runtime every front-end runs on, in four rooms that say where code runs: `seam/`
(what a front-end implements), `core/` (everything inside one transaction), `process/`
(what runs on a worker's threads and processes) and `facade/` with `engine.py` (the
public `Engine`, its views and traces)."""
