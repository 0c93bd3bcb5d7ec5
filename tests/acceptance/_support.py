"""Helpers of the acceptance tests: real worker processes, the ledger, scratch stores."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg

from tests.flows.crash import LEDGER_ENV
from waypost.store.postgres import split_url

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():  # pragma: no cover - another checkout layout
    PYTHON = sys.executable
FLOWS = "tests/flows/crash.py"


class Workers:
    """Starts `waypost worker` processes and guarantees none outlives the test: every
    process started here is killed (if still running) and reaped on `close()`."""

    def __init__(self, url: str, ledger: Path, logs: Path) -> None:
        self.url = url
        self.ledger = ledger
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stderr: dict[int, Path] = {}
        self._files: list[Any] = []

    def start(self, *options: str, module: str = FLOWS) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        err_path = self.logs / f"worker-{n}.err"
        err = open(err_path, "wb")  # noqa: SIM115 - closed in close()
        self._files.append(err)
        env = {**os.environ, LEDGER_ENV: str(self.ledger), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [PYTHON, "-m", "waypost.cli", "--db", self.url, "worker", module, *options],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err)
        self.procs.append(proc)
        self.stderr[proc.pid] = err_path
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self.stderr[proc.pid].read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(f"--- worker pid {p.pid} (rc {p.returncode}) ---\n{self.log(p)}"
                         for p in self.procs)

    def pause(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGSTOP the worker, but never in the middle of a transaction: a stopped process
        holding SQLite's write lock (or PostgreSQL row locks) would stall every other
        process, which is not what the tests that pause a worker are about."""
        for _ in range(50):
            proc.send_signal(signal.SIGSTOP)
            if store_unlocked(self.url):
                return
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        raise AssertionError(f"worker {proc.pid} always held a lock when paused")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL and reap: once this returns the process is gone, not a zombie."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def wait_serving(self, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        """Until the worker has installed its signal handlers and says it is serving."""
        wait_for(lambda: " serving " in self.log(proc) or proc.poll() is not None, timeout,
                 f"worker {proc.pid} to start serving")
        assert proc.poll() is None, f"worker exited at start-up:\n{self.log(proc)}"

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
        """SIGTERM (graceful stop) and reap; returns the exit code."""
        if proc.poll() is None:
            self.wait_serving(proc)
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):  # should never happen
                proc.wait(timeout=10)
        for f in self._files:
            f.close()


def store_unlocked(url: str) -> bool:
    """Whether a write transaction could take every lock a worker takes, right now."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.close()
    conninfo, schema = split_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '200ms'")
                conn.execute(f'SET LOCAL search_path TO "{schema}"')
                for table in ("steps", "runs", "leases", "workers"):
                    conn.execute(f"SELECT 1 FROM {table} FOR UPDATE").fetchall()
                conn.execute("LOCK TABLE attempts IN SHARE ROW EXCLUSIVE MODE")
            return True
        except psycopg.errors.LockNotAvailable:
            return False


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every execution recorded so far. A torn (partial) line would mean the ledger is not
    the reliable witness the tests rely on, so it fails loudly rather than being skipped."""
    if not path.exists():
        return []
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), f"torn last ledger line: {data[-200:]!r}"
    return [json.loads(line) for line in data.splitlines() if line]


def ledger_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def fresh_store_like(url: str, tmp_path: Path) -> Iterator[str]:
    """Another empty store of the same kind as `url` (for a reference run)."""
    if url.startswith("sqlite:"):
        yield f"sqlite:///{tmp_path / f'ref-{uuid.uuid4().hex[:8]}.db'}"
        return
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    schema = f"t_ref_{uuid.uuid4().hex[:12]}"
    yield urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))
    base = urlunsplit(parts._replace(query=urlencode(query)))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def steps_by_name(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in view["steps"]}


def hold_step_on_first_worker(workers: Workers, engine: Any, options: tuple[str, ...],
                              seconds: float) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start a worker and a run of `held`, and wait until that worker is running its step.
    Returns the worker process, the prefix of its worker id, and the run id."""
    from tests.flows.crash import held

    first = workers.start(*options)
    workers.wait_serving(first)
    first_id = f"{socket.gethostname()}:{first.pid}:"
    run_id = engine.start(held, {"seconds": seconds})

    def held_by_first() -> bool:
        step = engine.show(run_id)["steps"][0]
        return step["status"] == "running" and (step["worker"] or "").startswith(first_id)

    wait_for(held_by_first, 20, "the first worker to claim the step")
    return first, first_id, run_id
