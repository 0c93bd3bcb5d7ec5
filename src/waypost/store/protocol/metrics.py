"""What `/metrics` reads of the store, and the roll-up that keeps its cost to what changed."""

from __future__ import annotations

from typing import Any, Protocol


class MetricVerbs(Protocol):
    def roll_up_metrics(self, lag: float, batch: int) -> int:
        """Add the steps that finished more than `lag` seconds ago (at most `batch` past
        the last mark) to the totals `metrics` reads; returns how many were added. Locks
        the mark: two at once take turns."""

    def metrics(self) -> dict[str, Any]:
        """The store's state for `/metrics`: `open` and `finished` [(definition, task,
        status, steps, attempts, retries)] (finished: every finish counted once, from the
        totals and live past their mark), `durations` [(definition, task, cumulative
        counts per DURATION_BUCKETS bound, observed, seconds)] of the attempts that ended
        succeeded or failed steps, `dead_letters` [(task, status, count)], `ready`
        and `oldest_ready` (seconds), `timers_due`, `expiries` {lost|timeout|heartbeat:
        count}, `deliveries_pending` {handler: count}. A few statements, reads; its cost
        follows open and recently finished steps, not all stored."""
