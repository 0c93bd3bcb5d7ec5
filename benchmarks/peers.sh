#!/usr/bin/env bash
# One sitting: waypost on the DBOS peer shapes (both stores) and DBOS on the same shapes
# (SQLite default, SQLite WAL, PostgreSQL), interleaved, then the ratios. See benchmarks/README.md.
#
#   bash benchmarks/peers.sh [REPEAT]
#
# Needs /tmp/dbos-venv (python3 -m venv /tmp/dbos-venv &&
#   /tmp/dbos-venv/bin/pip install -q dbos==3.4.0) and ../shared/peers/ beside the repo
# (or PEERS_DIR). PostgreSQL at 127.0.0.1:5432, trust auth.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${1:-3}
PY=${PY:-.venv/bin/python}
DBOS_PY=${DBOS_PY:-/tmp/dbos-venv/bin/python}
PEERS_DIR=${PEERS_DIR:-$(cd .. && pwd)/shared/peers}
[ -f "$PEERS_DIR/bench_dbos.py" ] || PEERS_DIR=/work/shared/peers
OUT=${OUT:-benchmarks/results/peers-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
export PEERS_RESULTS=$PWD/$OUT PEERS_RUN=${PEERS_RUN:-/tmp/peers-run}
export PEERS_PG_URL=${PEERS_PG_URL:-postgresql://postgres@127.0.0.1:5432}

# Interleaved: each round runs waypost once on every shape and store, then DBOS once on
# every shape and backend, so a drift in the machine's load hits both engines alike.
[ -x "$DBOS_PY" ] || echo "no DBOS at $DBOS_PY: waypost figures only" >&2
for round in $(seq "$REPEAT"); do
  echo "## round $round of $REPEAT"
  "$PY" benchmarks/run.py --peer-shapes --store both --repeat 1 --only chain,many,fanout \
    --results "$OUT" | sed -n '/^waypost/,/^$/p'
  if [ -x "$DBOS_PY" ]; then
    for backend in sqlite sqlite-wal pg; do
      for wl in w1 w2 w3; do  # w1 is itself the median of 3 chains
        "$DBOS_PY" "$PEERS_DIR/bench_dbos.py" "$wl" "$backend" | grep -v '^#' || true
      done
    done
  fi
done
echo
"$PY" benchmarks/compare.py "$OUT"
