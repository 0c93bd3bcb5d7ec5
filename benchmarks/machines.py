"""State machines beside the DAG chain, in one sitting: what a transition costs.

    .venv/bin/python benchmarks/machines.py [--store sqlite|postgres|both] [--repeat 5]

Per repetition, on a fresh store each, in turn: `chain_1000` (1,000 chained no-op DAG
steps, an in-process worker), `Loop1000` (a machine making 1,000 transitions, each after a
no-op action, the same worker), and `Inbox` (a waiting machine driven by 1,000
`engine.send` calls from one thread, each one transition, decided in the sender's
transaction; no worker). It prints the median per second of each and the ratio of each
machine figure to the chain's, taken from the same repetitions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import fresh  # noqa: E402

import waypost as wp  # noqa: E402
from benchmarks import workloads  # noqa: E402


def chain(url: str) -> float:
    engine = wp.Engine(url)
    try:
        with engine.serving():
            engine.result(engine.start(workloads.three, {"x": -1}), 60)  # warm
            t = time.perf_counter()
            assert engine.result(engine.start(workloads.chain_1000, {"x": 0}), 600) == 1000
            return 1000 / (time.perf_counter() - t)
    finally:
        engine.close()


def loop(url: str) -> float:
    engine = wp.Engine(url)
    try:
        with engine.serving():
            engine.result(engine.start(workloads.three, {"x": -1}), 60)
            t = time.perf_counter()
            run_id = engine.start(workloads.Loop1000, {"i": 0})
            assert engine.result(run_id, 600) == {"i": workloads.MACHINE_LOOP}
            wall = time.perf_counter() - t
        assert len(engine.show(run_id)["transitions"]) == workloads.MACHINE_LOOP + 1
        return workloads.MACHINE_LOOP / wall
    finally:
        engine.close()


def sends(url: str) -> float:
    engine = wp.Engine(url)
    try:
        engine.start(workloads.Inbox, {"i": -1}, key="warm")
        engine.send("warm", "msg", {"i": 0})
        run_id = engine.start(workloads.Inbox, {"i": -1})
        t = time.perf_counter()
        for i in range(workloads.SENDS):
            assert engine.send(run_id, "msg", {"i": i})["status"] == "consumed"
        wall = time.perf_counter() - t
        assert engine.result(run_id, 10) == {"i": workloads.SENDS - 1}
        return workloads.SENDS / wall
    finally:
        engine.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true",
                    help="one JSON object of medians per store, instead of the table")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="waypost-machines-"))
    kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    if not args.json:
        print(f"{'store':9} {'measure':34} {'median/s':>9}  {'ratio to chain':>14}  samples")
    for kind in kinds:
        got: dict[str, list[float]] = {"chain": [], "loop": [], "sends": []}
        for _ in range(args.repeat):
            for name, bench in (("chain", chain), ("loop", loop), ("sends", sends)):
                with fresh(kind, root) as store:
                    got[name].append(bench(store.url))
        if args.json:
            print(json.dumps({"store": kind, **{f"{name}_per_s": statistics.median(values)
                                                for name, values in got.items()}}), flush=True)
            continue
        labels = {"chain": "DAG chain 1000: tasks", "loop": "machine loop 1000: transitions",
                  "sends": "machine, 1000 sends: transitions"}
        for name, values in got.items():
            ratios = [v / c for v, c in zip(values, got["chain"], strict=True)]
            ratio = "" if name == "chain" else f"{statistics.median(ratios):.2f}"
            print(f"{kind:9} {labels[name]:34} {statistics.median(values):9.0f}  {ratio:>14}  "
                  f"[{' '.join(f'{v:.0f}' for v in values)}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
