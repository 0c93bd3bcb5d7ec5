"""Event chains: deliveries per second, one event to 100 handlers, and the cost of a hop.

    .venv/bin/python benchmarks/chains.py [--store sqlite|postgres|both] [--repeat 3]

Per repetition, on a fresh store each, with 2 worker processes (`waypost worker
benchmarks.chain_handlers`, concurrency 8):
- `deliveries`: 10,000 events on a topic with one handler, emitted by one producer thread
  in transactions of 500 (`engine.emit_many`) while the workers deliver; events per second
  from the first event stored to the last delivery finished (the database's clock);
- `fanout`: one event to 100 handlers; seconds from the event to its last delivery;
- `hops`: a chain of 100 events, each emitted by the delivery of the one before (an
  outbox, in the transaction recording that delivery); milliseconds per hop.
It prints the median of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from run import FreshStore, fresh  # noqa: E402

import waypost as wp  # noqa: E402
from benchmarks import chain_handlers  # noqa: E402

EVENTS = 10_000
BATCH = 500


def _workers(store: FreshStore, n: int, logdir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        log = open(logdir / f"chains-{store.kind}-{i}.log", "wb")  # noqa: SIM115
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "waypost.cli", "--db", store.url, "worker",
             "benchmarks.chain_handlers", "--concurrency", "8"], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 60
    while store.query("SELECT COUNT(*) FROM workers")[0][0] < n:
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"workers did not start; see {logdir}")
        time.sleep(0.02)
    return procs


def _named_by(store: FreshStore) -> str:
    """The column of `runs` holding a run's definition: `definition` since schema 20,
    `flow` before. before_after.py runs this script on an older checkout's code too, whose
    store has the older name."""
    if store.kind == "sqlite":
        rows = store.query("SELECT name FROM pragma_table_info('runs')")
    else:
        rows = store.query("SELECT column_name FROM information_schema.columns WHERE "
                           "table_schema = current_schema() AND table_name = 'runs'")
    return "definition" if ("definition",) in rows else "flow"


def _wait(store: FreshStore, column: str, like: str, count: int,
          timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        (done,) = store.query(f"SELECT COUNT(*) FROM runs WHERE {column} LIKE '{like}' AND "
                              f"status = 'succeeded'")[0]
        if done >= count:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done} of {count} deliveries of {like} finished")
        time.sleep(0.02)


def _span(store: FreshStore, column: str, topic: str, like: str) -> float:
    (span,) = store.query(f"SELECT (SELECT MAX(finished_at) FROM runs WHERE {column} LIKE "
                          f"'{like}') - (SELECT MIN(created_at) FROM topic_events WHERE "
                          f"topic = '{topic}')")[0]
    return float(span)


def sitting(kind: str, root: Path) -> dict[str, float]:
    with fresh(kind, root) as store:
        engine = wp.Engine(store.url)
        procs = _workers(store, 2, root)
        column = _named_by(store)  # the engine has migrated the store by now
        try:
            for start in range(0, EVENTS, BATCH):
                engine.emit_many([("bench.one", {"i": i}, None, None)
                                  for i in range(start, start + BATCH)])
            _wait(store, column, "%:one", EVENTS)
            deliveries = EVENTS / _span(store, column, "bench.one", "%:one")
            engine.emit("bench.fan", {})
            _wait(store, column, "%:fan_%", chain_handlers.FANOUT)
            fanout = _span(store, column, "bench.fan", "%:fan_%")
            engine.emit("bench.hop", {"n": 0})
            _wait(store, column, "%:hop", chain_handlers.HOPS)
            hop_ms = 1000 * _span(store, column, "bench.hop", "%:hop") / chain_handlers.HOPS
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            engine.close()
    return {"deliveries_per_s": deliveries, "fanout_100_s": fanout, "hop_ms": hop_ms}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object of medians per store, instead of a line")
    args = parser.parse_args()
    kinds = ("sqlite", "postgres") if args.store == "both" else (args.store,)
    root = Path(tempfile.mkdtemp(prefix="wpchains-"))
    for kind in kinds:
        samples: list[dict[str, Any]] = [sitting(kind, root) for _ in range(args.repeat)]
        medians = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        if args.json:
            print(json.dumps({"store": kind, **medians}), flush=True)
            continue
        print(f"{kind:9} deliveries/s {medians['deliveries_per_s']:8.0f}   "
              f"100 handlers {medians['fanout_100_s']:6.3f} s   "
              f"per hop {medians['hop_ms']:6.2f} ms   "
              f"(medians of {args.repeat}; runs: {samples})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
