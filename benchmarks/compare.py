"""Ratios of waypost to DBOS from one sitting (see benchmarks/peers.sh).

    python benchmarks/compare.py DIR

DIR holds the sitting's waypost JSON lines (`run.py --peer-shapes --results DIR`, any
*.jsonl but dbos.jsonl) and DBOS's `dbos.jsonl` (PEERS_RESULTS=DIR). Every figure is a
median over the samples found; a ratio above 1 means waypost is faster.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

PAIRS = [("sqlite", "dbos-sqlite"), ("sqlite", "dbos-sqlite-wal"), ("postgres", "dbos-pg")]


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    folder = Path(sys.argv[1])
    dbos = load(folder / "dbos.jsonl") if (folder / "dbos.jsonl").exists() else []
    ours = [r for p in sorted(folder.glob("*.jsonl")) if p.name != "dbos.jsonl"
            for r in load(p) if r.get("shapes") == "peer"]

    def waypost(store: str, workload: str, key: str) -> list[float]:
        return [s[key] for r in ours if r["store"] == store and r["workload"] == workload
                for s in r["samples"]]

    def peer(variant: str, workload: str, key: str) -> list[float]:
        return [r[key] for r in dbos if r["variant"] == variant and r["workload"] == workload]

    measures = [  # label, waypost (workload, key), dbos (workload, key), higher is better
        ("chain 200: steps/s", ("chain", "tasks_per_s"), ("W1", "steps_per_s"), True),
        ("chain 200: steps/s, waypost by db clock", ("chain", "db_tasks_per_s"),
         ("W1", "steps_per_s"), True),
        ("300 x 3-step runs: runs/s", ("many", "runs_per_s"), ("W2", "workflows_per_s"), True),
        ("fan-out 200: wall s", ("fanout", "wall_s"), ("W3", "wall_s"), False),
    ]
    header = ("measure", "waypost", "store", "DBOS", "variant", "waypost/DBOS speed",
              "n (wp/dbos)")
    rows = [header]
    for label, (wl, wk), (pl, pk), higher in measures:
        for store, variant in PAIRS:
            ws, ps = waypost(store, wl, wk), peer(variant, pl, pk)
            if not ws or not ps:
                continue
            w, p = statistics.median(ws), statistics.median(ps)
            ratio = w / p if higher else p / w
            fmt = "{:.0f}" if higher else "{:.3f}"
            rows.append((label, fmt.format(w), store, fmt.format(p), variant,
                         f"{ratio:.2f}x", f"{len(ws)}/{len(ps)}"))
    if len(rows) == 1:
        print(f"no matching results in {folder}")
        return 1
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for store in ("sqlite", "postgres"):
        probes = [s["commit_probe_ms"] for r in ours if r["store"] == store
                  for s in r["samples"] if "commit_probe_ms" in s]
        if probes:
            print(f"durable 1-row commit probes on {store} during waypost's samples: median "
                  f"{statistics.median(probes):.3f} ms, range {min(probes):.3f}-"
                  f"{max(probes):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
