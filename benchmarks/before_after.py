"""A change's cost, measured as before/after ratios in one sitting, rounds alternating.

    .venv/bin/python benchmarks/before_after.py REV [--rounds 5] [--store both]
                        [--only chain,many,fanout,machine,deliveries]

REV (a commit, e.g. the one before a change) is checked out in a temporary git worktree;
each round runs `run.py --repeat 1 --only chain,many,fanout` on REV's code, then on this
checkout's, alternating which goes first, so a change in the machine's load hits both
alike. `machine` (a machine's 1,000-transition loop, `machines.py`) and `deliveries`
(10,000 topic events delivered by 2 worker processes, `chains.py`) run this checkout's
scripts on each side's code (PYTHONPATH), so both sides are measured the same way. It
prints, per store and measure, both medians and the ratio after / before for every round
and their median (above 1: this checkout is faster; for fan-out, seconds
before / seconds after). The JSON lines stay in benchmarks/results/before-after-<time>/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: (workload, key, higher is better)
MEASURES = [("chain", "median_tasks_per_s", True), ("many", "median_runs_per_s", True),
            ("fanout", "median_wall_s", False), ("machine", "loop_per_s", True),
            ("deliveries", "deliveries_per_s", True)]
#: Workloads measured by a script of their own, which prints JSON lines with `--json`.
SCRIPTS = {"machine": "machines.py", "deliveries": "chains.py"}


def run_once(code: Path, store: str, results: Path,
             only: str = "chain,many,fanout") -> list[dict[str, Any]]:
    """One pass with `code`'s sources (worker processes inherit them)."""
    results.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code / "src")}
    wanted = only.split(",")
    found = []
    common = [w for w in wanted if w not in SCRIPTS]
    if common:
        subprocess.run([sys.executable, str(code / "benchmarks" / "run.py"), "--store", store,
                        "--repeat", "1", "--only", ",".join(common), "--results",
                        str(results)], cwd=code, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for path in results.glob("*.jsonl"):
            found += [json.loads(line) for line in path.read_text().splitlines() if line]
            path.unlink()
    for workload in (w for w in wanted if w in SCRIPTS):
        out = subprocess.run([sys.executable, str(HERE / SCRIPTS[workload]), "--store", store,
                              "--repeat", "1", "--json"], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout
        found += [{**json.loads(line), "workload": workload}
                  for line in out.splitlines() if line.startswith("{")]
    return found


def figure(records: list[dict[str, Any]], store: str, workload: str, key: str) -> float:
    return float(next(r[key] for r in records if r["store"] == store
                      and r["workload"] == workload))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rev")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--store", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--only", default="chain,many,fanout",
                    help="the workloads to compare, of chain, many, fanout, machine and "
                         "deliveries")
    args = ap.parse_args()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = HERE / "results" / f"before-after-{stamp}"
    before = Path(tempfile.mkdtemp(prefix="waypost-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(before), args.rev],
                   cwd=ROOT, check=True)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    samples: dict[str, list[list[dict[str, Any]]]] = {"before": [], "after": []}
    try:
        for i in range(args.rounds):
            order = [("before", before), ("after", ROOT)]
            for side, code in order if i % 2 == 0 else reversed(order):
                records = run_once(code, args.store, out / f"{side}-{i}", args.only)
                samples[side].append(records)
                with (out / f"{side}.jsonl").open("a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in records)
            print(f"round {i + 1}/{args.rounds} done", flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT)
    print(f"\n{'store':9} {'measure':30} {'before':>9} {'after':>9}  after/before per round")
    for store in stores:
        for workload, key, higher in MEASURES:
            if workload not in args.only.split(","):
                continue
            b = [figure(r, store, workload, key) for r in samples["before"]]
            a = [figure(r, store, workload, key) for r in samples["after"]]
            ratios = [(y / x if higher else x / y) for x, y in zip(b, a, strict=True)]
            print(f"{store:9} {workload + ' ' + key.removeprefix('median_'):30} "
                  f"{statistics.median(b):9.4g} {statistics.median(a):9.4g}  "
                  f"median {statistics.median(ratios):.3f}  "
                  f"[{', '.join(f'{r:.2f}' for r in ratios)}]")
    print(f"\nJSON lines: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
