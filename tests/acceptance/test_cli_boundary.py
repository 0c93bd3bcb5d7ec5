"""The `waypost` command at its boundary: options, bad arguments, missing databases and
hostile input each get one clear line and the right exit code (real processes, both
stores)."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from tests.acceptance.test_cli import ok, waypost


# -- the demo -------------------------------------------------------------------------------
def test_the_demo_suggests_only_what_still_exists():
    last = ok(waypost("demo", timeout=120)).strip().splitlines()[-1]
    assert "waypost show" not in last or "--keep" in last, last

    kept = ok(waypost("demo", "--keep", timeout=120)).strip().splitlines()[-1]
    command = shlex.split(kept.split(":", 1)[1])
    assert command[0] == "waypost" and "show" in command, kept
    db = command[command.index("--db") + 1]
    try:
        shown = ok(waypost(*command[1:]))
        assert "succeeded" in shown and command[-1] in shown
    finally:
        shutil.rmtree(Path(db.removeprefix("sqlite:///")).parent)
