"""What `/metrics` reads of the store, at a cost that follows what changed, not what is
stored: open steps through the partial indexes claims use, finished steps from totals
rolled up as they go (schema 19) plus those that finished since the last roll-up, and
expired attempts through a partial index of their own."""

from __future__ import annotations

from typing import Any

from ... import codec
from .core import SqlCore

#: Steps that stand for no work of a task: waits, gates and child runs.
_COUNTED = "s.kind NOT IN ('gate', 'sleep', 'event', 'child')"


def _by_task(where: str) -> str:
    return ("SELECT r.definition, s.task, s.status, COUNT(*), SUM(s.attempts), "
            "SUM(CASE WHEN s.attempts > 1 THEN s.attempts - 1 ELSE 0 END) FROM steps s "
            "JOIN runs r ON r.id = s.run_id WHERE " + where + " AND " + _COUNTED +
            " GROUP BY r.definition, s.task, s.status")


#: Upper bounds (seconds) of the attempt-duration histogram's buckets. Stored counts are
#: one per bound, in this order: other bounds need a migration that empties
#: metric_durations.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0, 900.0, 3600.0)
_TOOK = "(s.finished_at - s.started_at)"


def _durations(where: str) -> str:
    """Per definition and task, how many ended steps' last attempts took at most each
    bound, how many there were and their seconds in all."""
    buckets = ", ".join(f"SUM(CASE WHEN {_TOOK} <= {bound!r} THEN 1 ELSE 0 END)"
                        for bound in DURATION_BUCKETS)
    return (f"SELECT r.definition, s.task, {buckets}, COUNT(*), SUM({_TOOK}) FROM steps s "
            f"JOIN runs r ON r.id = s.run_id WHERE {where} AND {_COUNTED} AND s.status IN "
            f"('succeeded', 'failed') AND s.started_at IS NOT NULL GROUP BY r.definition, s.task")


Histograms = dict[tuple[str, str], tuple[list[int], int, float]]


def _histograms(rows: list[Any], into: Histograms | None = None) -> Histograms:
    """Rows of `_durations` as histograms, added to `into`'s."""
    found: Histograms = {} if into is None else into
    n = len(DURATION_BUCKETS)
    for r in rows:
        key = (str(r[0]), str(r[1]))
        counts = [int(c or 0) for c in r[2:2 + n]]
        observed, seconds = int(r[2 + n] or 0), float(r[3 + n] or 0.0)
        if key in found:
            had, seen, spent = found[key]
            counts = [a + b for a, b in zip(had, counts, strict=True)]
            observed, seconds = observed + seen, seconds + spent
        found[key] = (counts, observed, seconds)
    return found


# One statement per partial index (steps_ready, steps_running, steps_waiting): SQLite uses
# a partial index only for a condition that is the index's own.
_OPEN = ("s.status = 'ready'", "s.status = 'running'",
         "s.status IN ('waiting', 'needs_attention')")
#: The condition of the partial index attempts_expired, written as it is there.
_EXPIRED = "outcome IN ('lost', 'timeout', 'heartbeat')"
Counts = list[tuple[str, str, str, int, int, int]]


def _counts(rows: list[Any]) -> Counts:
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4] or 0), int(r[5] or 0))
            for r in rows]


class MetricVerbs(SqlCore):
    def _mark(self, lock: bool = False) -> float:
        row = self.execute("SELECT mark FROM metric_marks WHERE name = 'steps'" +
                           (" {lock}" if lock else "")).fetchone()
        return float(row[0])

    def roll_up_metrics(self, lag: float, batch: int) -> int:
        """Add to the totals the steps that finished up to a cut, at most `batch` of them
        past the last cut and none in the last `lag` seconds (a transaction still open may
        yet commit a step finished then). Two scrapers at once take turns on the mark's
        row lock (SQLite: the write lock). Returns how many steps it added."""
        if batch < 1:
            raise ValueError("a roll-up takes a batch of at least one step")
        since = self._mark(lock=True)
        now = float(self.execute("SELECT {now}").fetchone()[0])
        row = self.execute("SELECT finished_at FROM steps WHERE finished_at > ? ORDER BY "
                           "finished_at LIMIT 1 OFFSET ?", (since, batch - 1)).fetchone()
        cut = now - lag if row is None else min(float(row[0]), now - lag)
        added = 0
        if cut > since:
            span = "s.finished_at > ? AND s.finished_at <= ?"
            rows = self.execute(_by_task(span), (since, cut)).fetchall()
            for definition, task, status, count, tries, retries in _counts(rows):
                self.execute("INSERT INTO metric_totals (definition, task, status, steps, "
                             "attempts, retries) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                             "(definition, task, status) DO UPDATE SET steps = "
                             "metric_totals.steps + excluded.steps, attempts = "
                             "metric_totals.attempts + excluded.attempts, retries = "
                             "metric_totals.retries + excluded.retries",
                             (definition, task, status, count, tries, retries))
                added += count
            rows = self.execute(_durations(span), (since, cut)).fetchall()
            changed = {(str(r[0]), str(r[1])) for r in rows}
            merged = _histograms(rows, self._stored_durations())
            for (definition, task), (counts, observed, seconds) in merged.items():
                if (definition, task) not in changed:
                    continue
                self.execute("INSERT INTO metric_durations (definition, task, buckets, "
                             "observed, seconds) VALUES (?, ?, ?, ?, ?) ON CONFLICT "
                             "(definition, task) DO UPDATE SET buckets = excluded.buckets, "
                             "observed = excluded.observed, seconds = excluded.seconds",
                             (definition, task, codec.dumps(counts), observed, seconds))
            self.execute("UPDATE metric_marks SET mark = ? WHERE name = 'steps'", (cut,))
        return added

    def _stored_durations(self) -> Histograms:
        found: Histograms = {}
        for definition, task, buckets, observed, seconds in self.execute(
                "SELECT definition, task, buckets, observed, seconds FROM "
                "metric_durations").fetchall():
            counts = [int(c) for c in codec.loads(buckets)]
            found[(str(definition), str(task))] = (counts, int(observed), float(seconds))
        return found

    def metrics(self) -> dict[str, Any]:
        """What `/metrics` shows of the whole store, as of the database's clock (in one
        snapshot, so the totals and the mark they were rolled up to agree):
        `open` steps (ready, running, waiting, needs_attention) and `finished` steps (every
        finish counted, from the totals and since them) by definition, task and status
        with their attempts and retries; `durations`, how long the attempt that ended each
        succeeded or failed step took (definition, task, cumulative counts per
        DURATION_BUCKETS bound, observed, seconds); dead letters by task; the ready queue (depth
        and oldest); timers due; lease expiries; deliveries pending per handler."""
        opened: Counts = []
        for where in _OPEN:
            opened += _counts(self.execute(_by_task(where)).fetchall())
        since = self._mark()
        finished: dict[tuple[str, str, str], list[int]] = {}
        totals = self.execute("SELECT definition, task, status, steps, attempts, retries "
                              "FROM metric_totals").fetchall()
        tail = self.execute(_by_task("s.finished_at > ?"), (since,)).fetchall()
        for definition, task, status, *numbers in _counts(totals) + _counts(tail):
            sums = finished.setdefault((definition, task, status), [0, 0, 0])
            for i, n in enumerate(numbers):
                sums[i] += n
        durations = _histograms(self.execute(_durations("s.finished_at > ?"), (since,))
                                .fetchall(), self._stored_durations())
        letters = self.execute("SELECT task, status, COUNT(*) FROM dead_letters GROUP BY "
                               "task, status").fetchall()
        ready = self.execute("SELECT COUNT(*), {now} - MIN(ready_at) FROM steps WHERE "
                             "status = 'ready'").fetchone()
        due = self.execute("SELECT COUNT(*) FROM steps WHERE status IN ('waiting', "
                           "'needs_attention') AND ready_at <= {now}").fetchone()
        expiries = {str(r[0]): int(r[1]) for r in self.execute(
            f"SELECT outcome, COUNT(*) FROM attempts WHERE {_EXPIRED} GROUP BY outcome")}
        pending = self.execute(
            "SELECT r.definition, COUNT(*) FROM runs r JOIN definitions d ON d.fingerprint = "
            "r.fingerprint WHERE d.kind = 'handler' AND r.status IN ('pending', 'running', "
            "'needs_attention') GROUP BY r.definition").fetchall()
        queued = self.execute("SELECT subscription, COUNT(*) FROM lane_queue GROUP BY "
                              "subscription").fetchall()
        waiting: dict[str, int] = {str(r[0]): int(r[1]) for r in pending}
        for name, count in queued:
            waiting[str(name)] = waiting.get(str(name), 0) + int(count)
        return {
            "open": opened,
            "finished": [(*key, *sums) for key, sums in sorted(finished.items())],
            "durations": [(*key, *value) for key, value in sorted(durations.items())],
            "dead_letters": [(str(r[0]), str(r[1]), int(r[2])) for r in letters],
            "ready": int(ready[0]), "oldest_ready": float(ready[1] or 0.0),
            "timers_due": int(due[0]), "expiries": expiries,
            "deliveries_pending": waiting}
