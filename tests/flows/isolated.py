"""A process-isolated task for worker subprocesses: its first attempt blocks forever, so a
test can kill the worker under it and watch what becomes of the child process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import waypost as wp


@wp.task(isolation="process")
def stuck_first(pidfile: str, ctx: wp.Context) -> str:
    if ctx.attempt == 1:
        Path(pidfile).write_text(str(os.getpid()))
        time.sleep(1000)  # no heartbeat, no deadline: only a kill ends this
    return f"done on attempt {ctx.attempt}"


@wp.flow()
def isolated_run(pidfile: str) -> str:
    return stuck_first(pidfile)
