"""Where the time of one chain step goes, with an in-process worker.

    python benchmarks/profile_chain.py [--store sqlite|postgres] [--length 1000] [--repeat 3]
                                       [--cprofile]

Wraps (never edits) waypost's store and worker methods with timers, runs the chain, and
prints the time per task spent in: BEGIN, the transaction's statements (by statement),
COMMIT, the worker waiting for the task thread, and the rest of the loop. `--cprofile`
profiles the worker thread with cProfile instead (top functions by own time).
For a sampling view of every thread: `py-spy record -f raw -o out.txt -- python
benchmarks/profile_chain.py`.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import re
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import fresh  # noqa: E402

import waypost as wp  # noqa: E402
from benchmarks import workloads  # noqa: E402
from waypost.runtime.process import worker as worker_mod  # noqa: E402
from waypost.store import base as base_mod  # noqa: E402
from waypost.store import sql as sql_mod  # noqa: E402

TIMES: collections.Counter[str] = collections.Counter()
COUNTS: collections.Counter[str] = collections.Counter()


def timed(cls: type, name: str, label: str | None = None) -> None:
    original = getattr(cls, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            key = label or f"{cls.__name__}.{name}"
            TIMES[key] += time.perf_counter() - t
            COUNTS[key] += 1

    setattr(cls, name, wrapper)


def statement_label(text: str) -> str:
    """The store verb that ran the statement (SqlTx.<verb>), and the statement's head."""
    verb = sys._getframe(2).f_code.co_name
    text = re.sub(r"\s+", " ", text)
    m = re.match(r"(UPDATE \w+|INSERT INTO \w+|SELECT .{0,30}? FROM \w+|\w+)", text)
    return f"sql: tx.{verb}: " + (m.group(1) if m else text[:30])


def instrument() -> None:
    store_classes = [c for c in _subclasses(base_mod.Store)]
    for cls in store_classes:
        for name, label in (("_begin", "BEGIN"), ("_commit", "COMMIT")):
            if name in vars(cls):
                timed(cls, name, label)
    original_execute = sql_mod.SqlTx.execute
    original_many = sql_mod.SqlTx.executemany

    def execute(self: Any, text: str, params: Any = ()) -> Any:
        t = time.perf_counter()
        try:
            return original_execute(self, text, params)
        finally:
            key = statement_label(text)
            TIMES[key] += time.perf_counter() - t
            COUNTS[key] += 1

    def executemany(self: Any, text: str, rows: Any) -> None:
        t = time.perf_counter()
        try:
            return original_many(self, text, rows)
        finally:
            key = statement_label(text) + " (many)"
            TIMES[key] += time.perf_counter() - t
            COUNTS[key] += 1

    sql_mod.SqlTx.execute = execute  # type: ignore[method-assign]
    sql_mod.SqlTx.executemany = executemany  # type: ignore[method-assign]
    timed(worker_mod.Worker, "_commit", "worker: whole transaction (BEGIN..COMMIT)")
    timed(worker_mod.Worker, "_wait", "worker: waiting for the task thread / wake-up")
    timed(worker_mod.Worker, "_submit", "worker: submit to the executor")


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--length", type=int, default=1000, choices=sorted(workloads.CHAINS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cprofile", action="store_true")
    args = ap.parse_args()
    # the dialects are imported lazily by open_store: import both before instrumenting
    from waypost.store import postgres, sqlite  # noqa: F401

    profiler = cProfile.Profile() if args.cprofile else None
    if profiler is None:  # the timers would show up in the profile: one or the other
        instrument()
    if profiler is not None:
        original_loop = worker_mod.Worker._loop

        def loop(self: Any, *a: Any) -> Any:
            profiler.enable()
            try:
                return original_loop(self, *a)
            finally:
                profiler.disable()

        worker_mod.Worker._loop = loop  # type: ignore[method-assign]

    flow = workloads.CHAINS[args.length]
    tmp = Path("/tmp")
    walls = []
    for _ in range(args.repeat):
        with fresh(args.store, tmp) as store:
            engine = wp.Engine(store.url)
            with engine.serving():
                engine.result(engine.start(workloads.three, {"x": -1}), 60)
                TIMES.clear()
                COUNTS.clear()
                t = time.perf_counter()
                run_id = engine.start(flow, {"x": 0})
                assert engine.result(run_id, 600) == args.length
                walls.append(time.perf_counter() - t)
            engine.close()
            per_task = {k: v / args.length for k, v in TIMES.items()}
    # TIMES holds the last repetition only (cleared after each warm-up)
    wall = walls[-1]
    if profiler is not None:
        print(f"{args.store} chain {args.length} under cProfile: "
              f"{', '.join(f'{w:.3f}' for w in walls)} s")
        print("cProfile of the worker thread (all repetitions), top 25 by own time:")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0
    print(f"{args.store} chain {args.length}: wall per repetition "
          f"{', '.join(f'{w:.3f}' for w in walls)} s; breakdown of the last "
          f"({wall / args.length * 1e6:.0f} µs per task):")
    print(f"  {'µs/task':>8} {'calls/task':>10}  what")
    for key, value in sorted(per_task.items(), key=lambda kv: -kv[1]):
        print(f"  {value * 1e6:8.1f} {COUNTS[key] / args.length:10.2f}  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
