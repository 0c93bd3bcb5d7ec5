"""Helpers of the acceptance tests: real worker processes, the ledger, scratch stores."""

from __future__ import annotations

import json
import os
import signal
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

    def start(self, *options: str) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        err_path = self.logs / f"worker-{n}.err"
        err = open(err_path, "wb")  # noqa: SIM115 - closed in close()
        self._files.append(err)
        env = {**os.environ, LEDGER_ENV: str(self.ledger), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [PYTHON, "-m", "waypost.cli", "--db", self.url, "worker", FLOWS, *options],
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

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL and reap: once this returns the process is gone, not a zombie."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
        """SIGTERM (graceful stop) and reap; returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - should never happen
                pass
        for f in self._files:
            f.close()


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
