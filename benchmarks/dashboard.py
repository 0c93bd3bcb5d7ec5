"""The API and the dashboard under a big store: the runs list with 100,000 runs, a run of
1,000 steps, and workers' throughput while dashboards poll, against without.

    .venv/bin/python benchmarks/dashboard.py [--store sqlite|postgres|both] [--runs 100000]
                                             [--repeat 3]

Per store, on a fresh one: `--runs` finished runs of one step (ended an hour ago) are
written straight through the store's verbs (batches of 5,000), plus a fan-out run of 1,000
items run by a worker; on PostgreSQL then ANALYZE (a bulk fill outruns autovacuum's
statistics). Then, in-process through the ASGI app (FastAPI and its middleware included,
no network), the median milliseconds of 20 requests each: a `/metrics` scrape once its
totals have caught up (beside the first scrape, how many it took to catch up, and the full
scan a scrape ran before schema 19); the runs list API (first page; a status filter; a
page 50,000 deep by its cursor; a search inside inputs, and for a field's value), the
runs list page `/ui/`, the run of 1,000 steps as JSON and as its page. Last, `--repeat` times in one
sitting, alternately: 300 runs of 3 steps through 2 worker processes, alone and with 5
dashboards (a process of their own) polling a `waypost serve` process every second for
the runs table and the runs list; runs per second and their ratio.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import httpx2 as httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from run import FreshStore, fresh  # noqa: E402

import waypost as wp  # noqa: E402
from benchmarks import workloads  # noqa: E402
from waypost.api import create_app  # noqa: E402
from waypost.api.auth import digest  # noqa: E402
from waypost.store.records import NewStep  # noqa: E402

TOKEN = "a-token-for-the-benchmark"
BATCH = 5_000


def _fill(engine: wp.Engine, n: int) -> None:
    """`n` succeeded runs of one succeeded step, oldest first."""
    fingerprint, body, _ = workloads.three.compile()
    store = engine._store()
    store.transact(lambda tx: tx.put_definition(fingerprint, workloads.three.name, "dag", body))
    for start in range(0, n, BATCH):
        def write(tx: Any, start: int = start) -> None:
            for i in range(start, min(start + BATCH, n)):
                run_id = f"{i:012x}{uuid.uuid4().hex[:12]}"
                text = f'{{"x": {i}, "customer": "c{i % 997}"}}'
                tx.insert_run(run_id, workloads.three.name, fingerprint, None, text, "c", 1)
                step = NewStep(name="noop", node="noop", task=workloads.noop.name, kind="task",
                               status="pending", waiting_on=0, max_attempts=1, timeout=None)
                tx.insert_steps(run_id, [step], [f"{run_id}/noop"])
                tx.end_run(run_id, "succeeded", None)
            tx.execute("UPDATE steps SET status = 'succeeded', attempts = 1, started_at = "
                       "{now} - 3600, finished_at = {now} - 3600 WHERE status = 'pending'")
        store.transact(write)

#: What a scrape of /metrics ran before schema 19: every step grouped, at every scrape.
FULL_SCAN = ("SELECT r.definition, s.task, s.status, COUNT(*), SUM(s.attempts) FROM steps s "
             "JOIN runs r ON r.id = s.run_id GROUP BY r.definition, s.task, s.status")


def _median_ms(fn: Any, n: int = 20) -> float:
    fn()  # warm: templates compiled, statements prepared
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(1000 * (time.perf_counter() - t))
    return statistics.median(samples)


def _reads(engine: wp.Engine, runs: int) -> dict[str, float]:
    app = create_app(engine, {digest(TOKEN): "bench"})
    # One client for every request, as a server keeps its event loop and its threads (and
    # so their connections); a client per request would time PostgreSQL's connection setup.
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        c.cookies.set("waypost_token", TOKEN)
        return _timed(engine, c, runs)


def _timed(engine: wp.Engine, c: TestClient, runs: int) -> dict[str, float]:
    with engine.serving():
        big = engine.start(workloads.fanout, {"n": 1000})
        engine.result(big, timeout=600)

    def ok(path: str, **params: Any) -> Any:
        answer = c.get(path, params=params)
        assert answer.status_code == 200, answer.text[:300]
        return answer

    deep = None
    cursor = None
    for _ in range(min(runs // 50, 1000)):  # walk to the middle once, keeping its cursor
        cursor = ok("/api/v1/runs", limit=50, **({"cursor": cursor} if cursor else {})).json()[
            "next"]
        if cursor is None:
            break
        deep = cursor
    t = time.perf_counter()
    ok("/metrics")  # the first scrape of a full store rolls up its first batch
    first_ms = 1000 * (time.perf_counter() - t)
    scrapes = 1
    while engine._store().transact(lambda tx: tx.roll_up_metrics(30.0, 50_000)):
        scrapes += 1
    store = engine._store()
    return {
        "metrics_first_ms": first_ms, "metrics_catch_up_scrapes": scrapes,
        "metrics_ms": _median_ms(lambda: ok("/metrics")),
        "metrics_full_scan_ms": _median_ms(
            lambda: store.read(lambda tx: tx.execute(FULL_SCAN).fetchall())),
        "runs_api_ms": _median_ms(lambda: ok("/api/v1/runs", limit=50)),
        "runs_api_status_ms": _median_ms(lambda: ok("/api/v1/runs", limit=50, status="failed")),
        "runs_api_deep_ms": _median_ms(lambda: ok("/api/v1/runs", limit=50, cursor=deep)),
        "runs_api_search_ms": _median_ms(lambda: ok("/api/v1/runs", limit=50,
                                                    search='"customer": "c996"')),
        "runs_api_field_ms": _median_ms(lambda: ok("/api/v1/runs", limit=50,
                                                   search="customer=c996")),
        "runs_page_ms": _median_ms(lambda: ok("/ui/")),
        "run_1000_api_ms": _median_ms(lambda: ok(f"/api/v1/runs/{big}"), 10),
        "run_1000_page_ms": _median_ms(lambda: ok(f"/ui/runs/{big}"), 10),
    }


def _workers(store: FreshStore, logdir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(2):
        log = open(logdir / f"dash-{store.kind}-{i}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "waypost.cli", "--db", store.url, "worker",
             "benchmarks.workloads", "--concurrency", "8"], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while store.query("SELECT COUNT(*) FROM workers")[0][0] < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not start; see {logdir}")
        time.sleep(0.02)
    return procs


#: Five open dashboards: each asks for the runs table and the runs list every second.
POLLERS = """
import sys, threading, time, httpx2 as httpx
base, token = sys.argv[1], sys.argv[2]
def poll():
    c = httpx.Client(base_url=base, headers={"Authorization": "Bearer " + token}, timeout=30)
    c.cookies.set("waypost_token", token)
    while True:
        c.get("/ui/runs-table"); c.get("/api/v1/runs", params={"limit": 50}); time.sleep(1)
for _ in range(5):
    threading.Thread(target=poll, daemon=True).start()
time.sleep(3600)
"""


def _server(store: FreshStore, logdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = open(logdir / f"dash-{store.kind}-serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "waypost.cli", "--db", store.url, "serve", "--port", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "WAYPOST_API_TOKEN": TOKEN})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the API server did not start; see {logdir}")
        time.sleep(0.05)


def _throughput(engine: wp.Engine, base: str | None) -> float:
    """Runs per second of 300 runs of 3 steps; with `base`, while 5 dashboards (another
    process) poll the API server there (a third process), as browsers would."""
    pollers = None
    if base is not None:
        pollers = subprocess.Popen([sys.executable, "-c", POLLERS, base, TOKEN], cwd=ROOT)
        time.sleep(1.0)
    try:
        t = time.perf_counter()
        ids = [engine.start(workloads.three, {"x": i}) for i in range(300)]
        for run_id in ids:
            engine.result(run_id, timeout=600)
        return len(ids) / (time.perf_counter() - t)
    finally:
        if pollers is not None:
            pollers.kill()
            pollers.wait(10)


def sitting(kind: str, root: Path, runs: int, repeat: int) -> dict[str, Any]:
    with fresh(kind, root) as store:
        engine = wp.Engine(store.url, poll=0.05)
        try:
            t = time.perf_counter()
            _fill(engine, runs)
            out: dict[str, Any] = {"fill_s": time.perf_counter() - t}
            if kind == "postgres":  # the planner statistics a live database has by now
                engine._store().transact(lambda tx: tx.execute("ANALYZE"))
            out.update(_reads(engine, runs))
            procs = _workers(store, root)
            server, base = _server(store, root)
            procs.append(server)
            try:
                alone, polled = [], []
                for _ in range(repeat):
                    alone.append(_throughput(engine, None))
                    polled.append(_throughput(engine, base))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(30)
            out["runs_per_s_alone"] = statistics.median(alone)
            out["runs_per_s_polled"] = statistics.median(polled)
            out["ratio"] = statistics.median(b / a for a, b in zip(alone, polled, strict=True))
        finally:
            engine.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    root = Path(tempfile.mkdtemp(prefix="wpdash-"))
    for kind in kinds:
        found = sitting(kind, root, args.runs, args.repeat)
        print(f"{kind:9} " + "  ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in found.items()), flush=True)


if __name__ == "__main__":
    main()
