"""The `waypost` command at its boundary: options, bad arguments, missing databases and
hostile input each get one clear line and the right exit code (real processes, both
stores)."""

from __future__ import annotations

import getpass
import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import waypost as wp
from tests.acceptance._support import wait_for
from tests.acceptance.test_cli import MODULE, _env, ok, one_error_line, runs_in, waypost
from tests.integration.helpers import join_listeners


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


# -- --db anywhere, one-line usage errors ------------------------------------------------
def test_db_is_taken_after_the_command_too(db_url: str):
    run_id = ok(waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}', "--db", db_url))
    run_id = run_id.strip()
    assert [r["id"] for r in runs_in(db_url)] == [run_id]
    listed = ok(waypost("runs", "--json", "--db", db_url))
    assert [json.loads(line)["id"] for line in listed.splitlines()] == [run_id]
    assert run_id in ok(waypost("show", run_id[:16], "--db", db_url))
    assert ok(waypost("dlq", "list", "--json", "--db", db_url)) == ""
    assert ok(waypost("limits", "--json", "--db", db_url)) == ""
    # After the command it wins over the environment and over --db before it.
    elsewhere = "sqlite:////nonexistent-dir/x.db"
    assert run_id in ok(waypost("runs", "--db", db_url, env=_env(WAYPOST_DB=elsewhere)))
    assert run_id in ok(waypost("runs", "--db", db_url, db=elsewhere))


@pytest.mark.parametrize("args", [
    ("runs", "--bogus"),
    ("show",),
    ("runs", "--limit", "many"),
    ("dlq", "show", "not-a-number"),
    ("no-such-command",),
    ("runs", "--db"),
], ids=["unknown-option", "missing-argument", "bad-value", "bad-type", "unknown-command",
        "db-without-value"])
def test_a_usage_error_is_one_line(args: tuple[str, ...]):
    line = one_error_line(waypost(*args), code=2)
    assert "--help" in line


# -- a missing database is not created by a command that only reads ----------------------
@pytest.mark.parametrize("command", [
    ("show", "0123"), ("show", "0123", "--json"), ("runs",), ("runs", "--json"),
    ("dlq", "list"), ("dlq", "show", "1"), ("dlq", "replay", "1"), ("limits",),
    ("resume", "0123"), ("cancel", "0123"), ("complete", "wp1.1.x"),
    ("approve", "0123", "gate"), ("retry", "0123", "step"),
], ids=lambda c: "-".join(c[:2]))
def test_a_missing_sqlite_file_is_one_line_and_stays_missing(tmp_path: Path,
                                                             command: tuple[str, ...]):
    path = tmp_path / "mistyped.db"
    line = one_error_line(waypost(*command, db=f"sqlite:///{path}"), code=4)
    assert "mistyped.db" in line
    assert list(tmp_path.iterdir()) == []


def test_start_still_creates_the_database(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    run_id = ok(waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}', db=url)).strip()
    assert run_id in ok(waypost("runs", db=url))


# -- arguments that match nothing, or everything -----------------------------------------
def _one_run(db_url: str) -> str:
    return ok(waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}', db=db_url)).strip()


def test_runs_refuses_an_unknown_status_and_names_the_valid_ones(db_url: str):
    _one_run(db_url)
    line = one_error_line(waypost("runs", "--status", "bogus", db=db_url), code=2)
    assert "bogus" in line
    for status in ("pending", "running", "succeeded", "failed", "cancelled", "compensated"):
        assert f"'{status}'" in line, line
    assert ok(waypost("runs", "--status", "pending", "--json", db=db_url)).count("\n") == 1


@pytest.mark.parametrize("command", [("show", ""), ("show", "", "--json"), ("cancel", ""),
                                     ("resume", ""), ("dlq", "list", "--run", "")],
                         ids=["show", "show-json", "cancel", "resume", "dlq-list"])
def test_an_empty_run_id_matches_no_run(db_url: str, command: tuple[str, ...]):
    run_id = _one_run(db_url)
    assert "empty" in one_error_line(waypost(*command, db=db_url), code=2)
    assert [r["status"] for r in runs_in(db_url) if r["id"] == run_id] == ["pending"]


@pytest.mark.parametrize("wildcard", ["%", "_"])
def test_run_prefixes_and_flow_names_match_literally(db_url: str, wildcard: str):
    first, second = _one_run(db_url), _one_run(db_url)
    # A pattern that, read as LIKE, matches the second run (and only it) by a wildcard.
    pattern = second[:12] + wildcard + second[13:20]
    for command in (("show", pattern), ("cancel", pattern), ("resume", pattern)):
        assert "no run matches" in one_error_line(waypost(*command, db=db_url), code=2)
    assert {r["id"]: r["status"] for r in runs_in(db_url)} == {first: "pending",
                                                                 second: "pending"}
    for flow in (wildcard, wildcard + "dder", "add" + wildcard, f"{MODULE}:add{wildcard}"):
        assert ok(waypost("runs", "--json", "--flow", flow, db=db_url)) == "", flow
    assert ok(waypost("runs", "--json", "--flow", "adder", db=db_url)).count("\n") == 2


# -- idempotency keys the stores cannot keep -----------------------------------------------
def test_a_long_key_is_refused_at_once_naming_the_limit(db_url: str):
    too_long = "k" * 3000  # past PostgreSQL's btree row size
    line = one_error_line(waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}',
                                  "--key", too_long, db=db_url, timeout=30), code=2)
    assert "1024 bytes" in line
    over = "é" * 513  # 1026 bytes of UTF-8, 513 characters
    assert "1024 bytes" in one_error_line(waypost(
        "start", f"{MODULE}:adder", "--input", '{"a": 1}', "--key", over, db=db_url), code=2)
    assert runs_in(db_url) == []
    at_limit = "é" * 512  # 1024 bytes of UTF-8
    first = ok(waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}', "--key", at_limit,
                       db=db_url)).strip()
    again = ok(waypost("start", f"{MODULE}:adder", "--input", '{"a": 1}', "--key", at_limit,
                       db=db_url)).strip()
    assert first == again
    assert [r["key"] for r in runs_in(db_url)] == [at_limit]


# -- what used to print a traceback -------------------------------------------------------
@pytest.mark.parametrize("levels", [150, 10_000])
def test_a_deeply_nested_input_is_one_line(db_url: str, levels: int):
    data = '{"a": ' + "[" * levels + "1" + "]" * levels + "}"
    line = one_error_line(waypost("start", f"{MODULE}:adder", "--input", data, db=db_url),
                          code=2)
    assert "--input" in line and "100" in line
    assert runs_in(db_url) == []


@pytest.mark.parametrize("args", [
    ("start", f"{MODULE}:adder", "--input", '{"a": 1}', "--key", "k\udcff"),
    ("show", "01a2\udcff"),
    ("cancel", "\udcfe"),
    ("runs", "--flow", "add\udcff"),
    ("start", f"{MODULE}:adder", "--input", '{"a": "\udcff"}'),
], ids=["key", "show", "cancel", "flow", "input"])
def test_bytes_that_are_not_utf8_are_one_line(db_url: str, args: tuple[str, ...]):
    runs_in(db_url)
    line = one_error_line(waypost(*args, db=db_url), code=2)
    assert "UTF-8" in line and ("\\xff" in line or "\\xfe" in line)
    assert runs_in(db_url) == []


BROKEN_MODULES = {
    "raises.py": "raise RuntimeError('configuration missing')\n",
    "syntax.py": "def broken(:\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "needs.py": "import no_such_dependency_xyz\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN_MODULES))
def test_a_module_whose_import_raises_is_one_line(db_url: str, tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_text(BROKEN_MODULES[name])
    for command in (("start", f"{path}:flow"), ("worker", str(path))):
        line = one_error_line(waypost(*command, db=db_url), code=2)
        assert f"importing module {path.stem} failed" in line, line
    assert runs_in(db_url) == []


# -- dead letters: who replays, and which can never be replayed ----------------------------
@pytest.fixture
def engine(db_url: str) -> Iterator[wp.Engine]:
    with wp.Engine(db_url, poll=0.05) as eng:
        yield eng
    join_listeners()


def _letters(db_url: str, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in
            ok(waypost("dlq", "list", "--json", *args, db=db_url)).splitlines()]


def test_dlq_replay_records_who_replayed(db_url: str, engine: wp.Engine):
    from tests.integration.test_dead_letters import division

    run_id = engine.start(division, {"a": 10, "b": 0})
    with engine.serving():
        with pytest.raises(wp.RunFailed):
            engine.result(run_id, timeout=30)
        [letter] = _letters(db_url)
        out = ok(waypost("dlq", "replay", str(letter["id"]), "--by", "alice", db=db_url))
        assert f"run {run_id} continues" in out
        with pytest.raises(wp.RunFailed):  # the same input fails again
            engine.result(run_id, timeout=30)
        [again] = _letters(db_url)
        ok(waypost("dlq", "replay", str(again["id"]), db=db_url))  # by the login name
        with pytest.raises(wp.RunFailed):
            engine.result(run_id, timeout=30)
    decisions = [(h["outcome"], h["worker"]) for h in engine.show(run_id)["steps"][0]["history"]
                 if h["attempt"] is None]
    assert decisions == [("replayed", "alice"), ("replayed", getpass.getuser())]
    human = ok(waypost("show", run_id, db=db_url))
    assert "replayed by alice" in human and "(timer)" not in human


def test_letters_that_can_never_be_replayed_are_closed_not_dead(db_url: str,
                                                                engine: wp.Engine,
                                                                tmp_path: Path):
    from tests.integration.test_compensation import fragile_saga, saga

    log = str(tmp_path / "log")
    undone = engine.start(saga, {"log": log})  # ship dies, the saga compensates
    skipped = engine.start(fragile_saga, {"log": log})
    with engine.serving():
        with pytest.raises(wp.RunFailed):
            engine.result(undone, timeout=30)
        wait_for(lambda: engine.status(skipped) == "compensation_failed", 30,
                 "the compensation to fail")
        engine.skip_step(skipped, "compensate:charge_fragile", {"refunded": "by hand"})
        wait_for(lambda: engine.status(skipped) == "compensation_failed" and any(
            s["name"] == "compensate:reserve_fragile" and s["status"] == "failed"
            for s in engine.show(skipped)["steps"]), 30, "the next compensation to fail")
    assert engine.status(undone) == "compensated"
    # A compensated run cannot continue, and a failed compensation is answered with
    # `waypost retry`, not a replay: nothing here is dead any more.
    assert _letters(db_url) == []
    closed = [d for d in _letters(db_url, "--all") if d["status"] == "closed"]
    assert {(d["run_id"], d["step"]) for d in closed} == {
        (undone, "ship"), (skipped, "ship"), (skipped, "compensate:charge_fragile"),
        (skipped, "compensate:reserve_fragile")}
    table = ok(waypost("dlq", "list", "--all", db=db_url))
    assert table.count("closed") == 4
    for d in closed:
        line = one_error_line(waypost("dlq", "replay", str(d["id"]), "--by", "bob",
                                      db=db_url), code=2)
        assert "compensat" in line or "skipped" in line or "is succeeded" in line, line
        assert json.loads(ok(waypost("dlq", "show", str(d["id"]), "--json", db=db_url)))[
            "status"] == "closed"
    assert engine.status(undone) == "compensated"


# -- task identity does not depend on where a command is run from --------------------------
SHOP = '''
import waypost as wp


@wp.task(timeout=30)
def price(n: int) -> int:
    return n * 10


@wp.task(timeout=30)
def total(p: int) -> int:
    return p + 1


@wp.flow()
def order(n: int) -> int:
    return total(price(n))
'''


def _in(cwd: Path, *args: str, db: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waypost.cli", "--db", db, *args], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("package", [False, True], ids=["plain-file", "in-a-package"])
def test_a_worker_serves_a_file_whatever_directory_it_starts_in(
        db_url: str, engine: wp.Engine, tmp_path: Path, package: bool):
    folder = tmp_path / "work" / ("pkg" if package else "")
    folder.mkdir(parents=True, exist_ok=True)
    if package:
        (folder / "__init__.py").write_text("")
    (folder / "shop.py").write_text(SHOP)
    relative = (folder / "shop.py").relative_to(tmp_path)

    # Nobody serves it yet: start says so, on one line, and still prints the run id.
    early = _in(tmp_path, "start", f"{relative}:order", "--input", '{"n": 1}', db=db_url)
    assert early.returncode == 0, early.stderr
    [warning] = early.stderr.splitlines()
    assert warning.startswith("warning: no live worker serves") and "shop:price" in warning
    early_id = early.stdout.strip()

    log = (tmp_path / "worker.err").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "waypost.cli", "--db", db_url, "worker", "shop.py",
         "--poll", "0.05"], cwd=folder, env=_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(lambda: " serving " in (tmp_path / "worker.err").read_text(), 30,
                 "the worker to serve")
        assert engine.result(early_id, timeout=30) == 11
        started = _in(tmp_path, "start", f"{relative}:order", "--input", '{"n": 2}', db=db_url)
        assert started.returncode == 0 and started.stderr == "", started.stderr
        assert engine.result(started.stdout.strip(), timeout=30) == 21
        name = "pkg.shop" if package else "shop"
        assert engine.show(early_id)["flow"] == f"{name}:order"
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()


def test_a_file_named_like_a_loaded_module_is_one_line(db_url: str, tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "json.py").write_text(SHOP)  # would import the standard library's
    line = one_error_line(_in(tmp_path, "worker", "sub/json.py", db=db_url), code=2)
    assert "already another module" in line and "rename" in line
