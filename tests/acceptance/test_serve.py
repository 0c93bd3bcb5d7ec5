"""`waypost serve` as a real process (both stores): on 127.0.0.1 by default, a token from
WAYPOST_API_TOKEN or generated at first start (printed once, kept across restarts as a
digest), only /healthz open, and --no-auth said out loud; and a worker's attempt log and
metrics (`--log-attempts`, `--metrics-port`)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

import waypost as wp
from tests.flows import behaviour as flows

from ._support import Workers, wait_for
from .test_cli import ROOT, _env

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, **env: str) -> tuple[subprocess.Popen[str], str]:
        port = _port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "waypost.cli", "--db", self.db_url, "serve", "--port",
             str(port), "--app", "tests.flows.behaviour", *args],
            cwd=ROOT, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.procs.append(proc)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                return False

        wait_for(up, 30, "the API to answer")
        return proc, base

    def stop(self, proc: subprocess.Popen[str]) -> str:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
        return out


@pytest.fixture
def server(db_url: str) -> Iterator[Server]:
    s = Server(db_url)
    yield s
    for proc in s.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _get(base: str, path: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{base}{path}", headers=headers, timeout=10)


def test_a_token_from_the_environment(server: Server) -> None:
    token = "an-environment-token-0123"
    proc, base = server.start(WAYPOST_API_TOKEN=f"ops={token}")
    assert _get(base, "/api/v1/runs").status_code == 401
    assert _get(base, "/api/v1/runs", token).json() == {"runs": [], "next": None}
    made = httpx.post(f"{base}/api/v1/runs", json={"definition": "adder", "input": {"a": 1}},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert made.status_code == 201, made.text
    assert _get(base, "/api/v1/openapi.json", token).json()["info"]["title"] == "waypost"
    out = server.stop(proc)
    assert "127.0.0.1" in out and token not in out  # never echoed


def test_a_token_generated_at_first_start_is_printed_once_and_kept(server: Server) -> None:
    first, base = server.start()
    out = server.stop(first)
    [token] = re.findall(r"API token \(shown once; its digest is stored\): (\S+)", out)
    second, base = server.start()
    assert _get(base, "/api/v1/runs", token).status_code == 200  # kept across restarts
    assert _get(base, "/api/v1/runs", token + "x").status_code == 401
    again = server.stop(second)
    assert token not in again and "generated at first start" in again


def test_no_auth_is_explicit_and_warned_about(server: Server) -> None:
    proc, base = server.start("--no-auth")
    assert _get(base, "/api/v1/runs").status_code == 200
    assert "serving without auth" in server.stop(proc)


def test_a_worker_logs_attempts_as_json_and_serves_its_metrics(
        db_url: str, workers: Workers) -> None:
    port = _port()
    proc = workers.start("--log-attempts", "--metrics-port", str(port), "--poll", "0.05",
                         module="tests.flows.behaviour")
    workers.wait_serving(proc)
    with wp.Engine(db_url) as engine:
        run_id = engine.start(flows.adder, {"a": 1})
        assert engine.result(run_id, timeout=30) == 3
        key = engine.show(run_id)["steps"][0]["idempotency_key"]

    def ended() -> list[dict[str, Any]]:
        lines = [json.loads(line.split("waypost.attempts: ", 1)[1])
                 for line in workers.log(proc).splitlines() if "waypost.attempts: " in line]
        return [x for x in lines if x["run"] == run_id and x["event"] == "attempt_ended"]

    [line] = wait_for(ended, 10, "the attempt's end in the log")
    assert (line["outcome"], line["idempotency_key"]) == ("succeeded", key)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert re.search(r'waypost_attempts_ended_total\{outcome="succeeded",task="[^"]*add"\} 1\.0',
                     text), text[:2000]
    assert "waypost_attempt_seconds_bucket" in text
