"""waypost benchmarks: chain, many small runs with worker processes, fan-out, worker RSS,
and the raw cost of one durable commit on each store.

    python benchmarks/run.py [--store sqlite|postgres|both] [--repeat N] [--only NAME[,NAME]]
                             [--peer-shapes] [--concurrency N] [--workers N]

NAME is one of: commit, chain, many, fanout (`many` also measures worker RSS).
Every repetition gets a fresh store (a new SQLite file, or a new PostgreSQL schema that is
dropped afterwards). The table shows medians; every sample is appended as JSON lines to
benchmarks/results/<date>.jsonl. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # `benchmarks.workloads`, the name worker processes import too

import psycopg  # noqa: E402

import waypost as wp  # noqa: E402
from benchmarks import workloads  # noqa: E402

PG_BASE = os.environ.get("WAYPOST_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
WORKLOADS = ("commit", "chain", "many", "fanout")
RESULT_TIMEOUT = 600.0


@dataclass(frozen=True)
class Shapes:
    name: str
    chain: int
    many_runs: int
    fanout: int


DEFAULT_SHAPES = Shapes("default", chain=workloads.CHAIN_LONG, many_runs=1000, fanout=1000)
PEER_SHAPES = Shapes("peer", chain=workloads.CHAIN_PEER, many_runs=300, fanout=200)


# -- fresh stores -------------------------------------------------------------------------------
class FreshStore:
    """One empty database for one repetition; `query` reads it directly (not via waypost)."""

    kind = ""
    url = ""

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> FreshStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class FreshSqlite(FreshStore):
    kind = "sqlite"

    def __init__(self, root: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="wpbench-", dir=root))
        self.path = self.dir / "waypost.db"
        self.url = f"sqlite:///{self.path}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class FreshPostgres(FreshStore):
    kind = "postgres"

    def __init__(self) -> None:
        self.schema = f"bench_{uuid.uuid4().hex[:12]}"
        self.url = f"{PG_BASE}?schema={self.schema}"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{self.schema}"')
            return conn.execute(sql).fetchall()

    def cleanup(self) -> None:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


def fresh(kind: str, root: Path) -> FreshStore:
    return FreshSqlite(root) if kind == "sqlite" else FreshPostgres()


# -- the raw cost of a durable commit -------------------------------------------------------------
def bench_commit(kind: str, root: Path, n: int = 300) -> dict[str, Any]:
    """Median cost of BEGIN; INSERT one row; COMMIT, and of 100 rows in one commit, with the
    durability settings waypost uses (SQLite WAL + synchronous=FULL; PostgreSQL defaults)."""
    out: dict[str, Any] = {}
    with fresh(kind, root) as store:
        if kind == "sqlite":
            assert isinstance(store, FreshSqlite)
            for sync in ("FULL", "NORMAL"):
                path = store.dir / f"commit-{sync}.db"
                conn = sqlite3.connect(path, isolation_level=None)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {sync}")
                conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                out[f"sync_{sync.lower()}"] = _commit_loop(
                    lambda sql, args=(), c=conn: c.execute(sql, args),
                    lambda sql, rows, c=conn: c.executemany(sql, rows), "BEGIN IMMEDIATE", n)
                conn.close()
        else:
            assert isinstance(store, FreshPostgres)
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{store.schema}"')
                conn.execute(f'SET search_path TO "{store.schema}"')
                conn.execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
                settings = {k: conn.execute(f"SHOW {k}").fetchone()[0]  # type: ignore[index]
                            for k in ("fsync", "synchronous_commit", "wal_sync_method")}
                out["default"] = _commit_loop(
                    lambda sql, args=(), c=conn: c.execute(sql.replace("?", "%s"), args),
                    lambda sql, rows, c=conn: c.cursor().executemany(sql.replace("?", "%s"),
                                                                      rows),
                    "BEGIN", n)
                out["default"]["settings"] = settings
    return out


def _commit_loop(execute: Callable[..., Any], executemany: Callable[..., Any], begin: str,
                 n: int) -> dict[str, Any]:
    payload = "x" * 100
    for _ in range(20):  # warm-up
        execute(begin)
        execute("INSERT INTO t (v) VALUES (?)", (payload,))
        execute("COMMIT")
    one = []
    for _ in range(n):
        t = time.perf_counter()
        execute(begin)
        execute("INSERT INTO t (v) VALUES (?)", (payload,))
        execute("COMMIT")
        one.append(time.perf_counter() - t)
    hundred = []
    for _ in range(max(n // 10, 10)):
        t = time.perf_counter()
        execute(begin)
        executemany("INSERT INTO t (v) VALUES (?)", [(payload,)] * 100)
        execute("COMMIT")
        hundred.append(time.perf_counter() - t)
    one.sort()
    return {"one_row_ms": round(statistics.median(one) * 1e3, 4),
            "one_row_p90_ms": round(one[int(len(one) * 0.9)] * 1e3, 4),
            "hundred_rows_ms": round(statistics.median(hundred) * 1e3, 4),
            "commits": n}


def commit_probe(store: FreshStore, n: int = 100) -> float:
    """Median ms of one durable single-row commit, taken just before a sample on the same
    disk or server: fsync latency on a shared machine drifts by several times within
    minutes, so every sample carries the physical limit it ran against."""
    payload = "x" * 100
    times = []
    if isinstance(store, FreshSqlite):
        conn = sqlite3.connect(store.dir / "probe.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            for _ in range(n + 10):
                t = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO probe (v) VALUES (?)", (payload,))
                conn.execute("COMMIT")
                times.append(time.perf_counter() - t)
        finally:
            conn.close()
    else:
        assert isinstance(store, FreshPostgres)
        with psycopg.connect(PG_BASE, autocommit=True) as pg:
            pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{store.schema}"')
            pg.execute(f'CREATE TABLE "{store.schema}".bench_probe '
                       "(id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
            for _ in range(n + 10):
                t = time.perf_counter()
                pg.execute("BEGIN")
                pg.execute(f'INSERT INTO "{store.schema}".bench_probe (v) VALUES (%s)',
                           (payload,))
                pg.execute("COMMIT")
                times.append(time.perf_counter() - t)
    return statistics.median(times[10:]) * 1e3


# -- in-process workloads: chain and fan-out ------------------------------------------------------
def _warm(engine: wp.Engine) -> None:
    """One tiny run first (connections, definition caches): not timed, excluded from spans."""
    engine.result(engine.start(workloads.three, {"x": -1}), RESULT_TIMEOUT)


def bench_chain(store: FreshStore, length: int, concurrency: int) -> dict[str, Any]:
    flow = workloads.CHAINS[length]
    engine = wp.Engine(store.url, concurrency=concurrency)
    try:
        with engine.serving():
            _warm(engine)
            t0 = time.perf_counter()
            run_id = engine.start(flow, {"x": 0})
            t_started = time.perf_counter()
            result = engine.result(run_id, RESULT_TIMEOUT)
            wall = time.perf_counter() - t0
        assert result == length, result
        (span,) = store.query(f"SELECT finished_at - created_at FROM runs WHERE id = '{run_id}'")[0]
    finally:
        engine.close()
    return {"tasks": length, "wall_s": wall, "db_s": float(span), "start_s": t_started - t0,
            "tasks_per_s": length / wall, "us_per_task": wall / length * 1e6,
            "db_tasks_per_s": length / float(span)}


def bench_fanout(store: FreshStore, n: int, concurrency: int) -> dict[str, Any]:
    engine = wp.Engine(store.url, concurrency=concurrency)
    try:
        with engine.serving():
            _warm(engine)
            t0 = time.perf_counter()
            run_id = engine.start(workloads.fanout, {"n": n})
            result = engine.result(run_id, RESULT_TIMEOUT)
            wall = time.perf_counter() - t0
        assert result == n * (n + 1) // 2, result
        (span,) = store.query(f"SELECT finished_at - created_at FROM runs WHERE id = '{run_id}'")[0]
    finally:
        engine.close()
    return {"items": n, "wall_s": wall, "db_s": float(span), "steps": n + 2}


# -- many small runs with worker processes ------------------------------------------------------
def _status_kib(pid: int) -> dict[str, int]:
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmHWM", "VmRSS"):
                    found[key] = int(line.split()[1])
    except OSError:
        pass
    return found


def bench_many(store: FreshStore, runs: int, workers: int, concurrency: int,
               logdir: Path, starters: int = 1) -> dict[str, Any]:
    engine = wp.Engine(store.url, concurrency=concurrency)  # creates the schema
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        t_boot = time.perf_counter()
        for i in range(workers):
            log = open(logdir / f"worker-{store.kind}-{i}.log", "wb")  # noqa: SIM115
            logs.append(log)
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "waypost.cli", "--db", store.url, "worker",
                 "benchmarks.workloads", "--concurrency", str(concurrency)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while True:  # serving = registered in the workers table
            (count,) = store.query("SELECT COUNT(*) FROM workers")[0]
            if count >= workers:
                break
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"worker exited with {p.returncode}; see {logdir}")
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not register within 60 s")
            time.sleep(0.01)
        boot = time.perf_counter() - t_boot

        t0 = time.perf_counter()
        if starters == 1:
            ids = [engine.start(workloads.three, {"x": i}) for i in range(runs)]
        else:  # the Engine gives each thread its own connection
            with concurrent.futures.ThreadPoolExecutor(starters) as pool:
                ids = list(pool.map(lambda i: engine.start(workloads.three, {"x": i}),
                                    range(runs)))
        t_started = time.perf_counter()
        results = [engine.result(r, RESULT_TIMEOUT) for r in ids]
        wall = time.perf_counter() - t0
        assert results == [i + workloads.THREE_STEPS for i in range(runs)]
        (span,) = store.query("SELECT MAX(finished_at) - MIN(created_at) FROM runs "
                              "WHERE definition = 'bench:three'")[0]
        mem = [_status_kib(p.pid) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
        engine.close()
    served = []
    for i in range(workers):
        text = (logdir / f"worker-{store.kind}-{i}.log").read_text(errors="replace")
        marker = [ln for ln in text.splitlines() if " stopped: " in ln]
        served.append(int(marker[-1].split(" stopped: ")[1].split()[0]) if marker else None)
    return {"runs": runs, "steps_per_run": workloads.THREE_STEPS, "workers": workers,
            "starters": starters,
            "wall_s": wall, "db_s": float(span), "start_s": t_started - t0,
            "runs_per_s": runs / wall, "db_runs_per_s": runs / float(span),
            "worker_boot_s": boot, "steps_by_worker": served,
            "worker_peak_rss_mib": [round(m.get("VmHWM", 0) / 1024, 1) for m in mem],
            "worker_rss_mib": [round(m.get("VmRSS", 0) / 1024, 1) for m in mem],
            "max_worker_peak_rss_mib": round(max(m.get("VmHWM", 0) for m in mem) / 1024, 1)}


# -- driver -------------------------------------------------------------------------------------
def median_of(samples: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(s[key] for s in samples))


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                             capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT,
                               text=True, capture_output=True).stdout.strip()
        return out + ("+dirty-src" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=",".join(WORKLOADS),
                    help=f"comma-separated subset of {', '.join(WORKLOADS)}")
    ap.add_argument("--peer-shapes", action="store_true",
                    help="the DBOS peer shapes: chain 200, 300 runs x 3, fan-out 200")
    ap.add_argument("--concurrency", type=int, default=8,
                    help="worker concurrency (waypost's default is 8)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for `many`")
    ap.add_argument("--starters", type=int, default=1,
                    help="threads of the benchmark process that start the runs of `many`")
    ap.add_argument("--tmp", default=None, help="where fresh SQLite files go (default: a "
                    "temporary directory on the same disk as /tmp)")
    ap.add_argument("--results", default=str(HERE / "results"))
    args = ap.parse_args()

    only = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in only if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {WORKLOADS}")
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    shapes = PEER_SHAPES if args.peer_shapes else DEFAULT_SHAPES
    root = Path(args.tmp) if args.tmp else Path(tempfile.mkdtemp(prefix="waypost-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    logdir = root / "logs"
    logdir.mkdir(exist_ok=True)
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)
    out_path = results_dir / f"{dt.date.today().isoformat()}.jsonl"
    sitting = uuid.uuid4().hex[:8]
    meta = {"sitting": sitting, "commit": git_commit(), "shapes": shapes.name,
            "concurrency": args.concurrency, "repeat": args.repeat, "workers": args.workers,
            "starters": args.starters,
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    print(f"# sitting {sitting}  commit {meta['commit']}  shapes {shapes.name}  "
          f"repeat {args.repeat}  concurrency {args.concurrency}  "
          f"loadavg {meta['loadavg_at_start']}", flush=True)

    def emit(record: dict[str, Any]) -> None:
        record = {**meta, "ts": dt.datetime.now().isoformat(timespec="seconds"), **record}
        with out_path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    table: list[tuple[str, str, str, str]] = []  # store, measure, median, samples
    try:
        for kind in kinds:
            if "commit" in only:
                commits = [bench_commit(kind, root) for _ in range(args.repeat)]
                for variant in commits[0]:
                    vs = [c[variant] for c in commits]
                    rec = {"store": kind, "workload": "commit", "variant": variant,
                           "samples": vs,
                           "one_row_ms": median_of(vs, "one_row_ms"),
                           "hundred_rows_ms": median_of(vs, "hundred_rows_ms")}
                    emit(rec)
                    label = f"durable commit, 1 row ({variant})"
                    table.append((kind, label, f"{rec['one_row_ms']:.3f} ms",
                                  _fmt([v["one_row_ms"] for v in vs], "{:.3f}")))
                    table.append((kind, f"commit of 100 rows ({variant})",
                                  f"{rec['hundred_rows_ms']:.3f} ms",
                                  _fmt([v["hundred_rows_ms"] for v in vs], "{:.3f}")))
                    print(f"  {kind} commit {variant}: {rec['one_row_ms']:.3f} ms", flush=True)
            runners: list[tuple[str, Callable[[FreshStore], dict[str, Any]]]] = []
            if "chain" in only:
                runners.append(("chain", lambda s: bench_chain(s, shapes.chain,
                                                               args.concurrency)))
            if "many" in only:
                runners.append(("many", lambda s: bench_many(s, shapes.many_runs, args.workers,
                                                             args.concurrency, logdir,
                                                             args.starters)))
            if "fanout" in only:
                runners.append(("fanout", lambda s: bench_fanout(s, shapes.fanout,
                                                                 args.concurrency)))
            for name, fn in runners:
                samples = []
                for i in range(args.repeat):
                    with fresh(kind, root) as store:
                        probe = commit_probe(store)
                        sample = {**fn(store), "commit_probe_ms": round(probe, 4)}
                    samples.append(sample)
                    print(f"  {kind} {name} #{i + 1}: " + ", ".join(
                        f"{k}={_short(v)}" for k, v in sample.items()), flush=True)
                rec = {"store": kind, "workload": name, "samples": samples}
                rec.update(_summarise(name, samples))
                emit(rec)
                table.extend(_rows(kind, name, shapes, samples, args.workers))
    finally:
        if not args.tmp:
            shutil.rmtree(root, ignore_errors=True)

    print()
    print(f"waypost {meta['commit']}, {shapes.name} shapes, median of {args.repeat} "
          f"(samples in brackets), {dt.datetime.now():%Y-%m-%d %H:%M}")
    widths = [max(len(r[i]) for r in [("store", "measure", "median", "samples"), *table])
              for i in range(4)]
    for row in [("store", "measure", "median", "samples"), *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(f"\nJSON lines appended to {out_path}")
    return 0


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _fmt(values: list[float], pattern: str) -> str:
    return "[" + " ".join(pattern.format(v) for v in values) + "]"


def _summarise(name: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = {"chain": ("wall_s", "db_s", "tasks_per_s", "us_per_task", "db_tasks_per_s",
                      "start_s"),
            "many": ("wall_s", "db_s", "runs_per_s", "db_runs_per_s", "start_s",
                     "worker_boot_s", "max_worker_peak_rss_mib"),
            "fanout": ("wall_s", "db_s")}[name]
    return {f"median_{k}": round(median_of(samples, k), 4) for k in (*keys, "commit_probe_ms")}


def _rows(kind: str, name: str, shapes: Shapes, samples: list[dict[str, Any]],
          workers: int) -> list[tuple[str, str, str, str]]:
    def row(label: str, key: str, unit: str, pattern: str) -> tuple[str, str, str, str]:
        values = [s[key] for s in samples]
        return (kind, label, pattern.format(statistics.median(values)) + unit,
                _fmt(values, pattern))

    rows = [row(f"{name}: durable 1-row commit just before", "commit_probe_ms", " ms",
                "{:.3f}")]
    if name == "chain":
        n = shapes.chain
        rows += [row(f"chain {n}: tasks/s (wall)", "tasks_per_s", "", "{:.0f}"),
                 row(f"chain {n}: µs per task (wall)", "us_per_task", "", "{:.0f}"),
                 row(f"chain {n}: tasks/s (db clock)", "db_tasks_per_s", "", "{:.0f}")]
    elif name == "many":
        n = shapes.many_runs
        rows += [row(f"{n} x 3-task runs, {workers} worker procs: runs/s (wall)",
                     "runs_per_s", "", "{:.0f}"),
                 row(f"{n} x 3-task runs: runs/s (db clock)", "db_runs_per_s", "", "{:.0f}"),
                 row(f"{n} x 3-task runs: time to start all", "start_s", " s", "{:.2f}"),
                 row("worker process peak RSS (max of workers)", "max_worker_peak_rss_mib",
                     " MiB", "{:.1f}")]
    else:
        n = shapes.fanout
        rows += [row(f"fan-out {n}: wall", "wall_s", " s", "{:.3f}"),
                 row(f"fan-out {n}: db clock", "db_s", " s", "{:.3f}")]
    return rows

if __name__ == "__main__":
    sys.exit(main())
