"""`/metrics`: the store's state in Prometheus's text format, read at each scrape (so any
number of API servers agree), with this process's own metrics after it. Counts of ended
steps come from totals the scrape rolls forward (schema 19), so a scrape costs what
changed since the last one, not the whole store."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ..runtime.engine import Engine
from ..store.sql.metrics import DURATION_BUCKETS
from .runs import engine

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector(Collector):
    def __init__(self, eng: Engine) -> None:
        self.engine = eng

    def collect(self) -> Iterator[Metric]:
        found = self.engine.metrics()
        steps = GaugeMetricFamily("waypost_steps", "Steps not yet ended (ready, running, "
                                  "waiting, needs_attention), by definition, task and status",
                                  labels=["definition", "task", "status"])
        finished = CounterMetricFamily("waypost_steps_finished", "Steps ended (succeeded, "
                                       "failed, cancelled...): each end counted once",
                                       labels=["definition", "task", "status"])
        started = CounterMetricFamily("waypost_step_attempts", "Attempts started",
                                      labels=["definition", "task"])
        retried = CounterMetricFamily("waypost_step_retries", "Attempts after a step's first",
                                      labels=["definition", "task"])
        attempts: dict[tuple[str, str], list[int]] = {}
        for family, rows in ((steps, found["open"]), (finished, found["finished"])):
            for definition, task, status, count, tries, retries in rows:
                family.add_metric([definition, task, status], count)
                spent = attempts.setdefault((definition, task), [0, 0])
                spent[0] += tries
                spent[1] += retries
        for (definition, task), (tries, retries) in sorted(attempts.items()):
            started.add_metric([definition, task], tries)
            retried.add_metric([definition, task], retries)
        yield from (steps, finished, started, retried)
        took = HistogramMetricFamily("waypost_step_seconds", "How long the attempt that "
                                     "ended a step (succeeded or failed) took",
                                     labels=["definition", "task"])
        for definition, task, counts, observed, seconds in found["durations"]:
            buckets = [(repr(bound), count) for bound, count in
                       zip(DURATION_BUCKETS, counts, strict=True)]
            took.add_metric([definition, task], [*buckets, ("+Inf", observed)], seconds)
        yield took
        dead = GaugeMetricFamily("waypost_dead_letters", "Dead letters by task and status",
                                 labels=["task", "status"])
        for task, status, count in found["dead_letters"]:
            dead.add_metric([task, status], count)
        yield dead
        yield GaugeMetricFamily("waypost_ready_steps", "Steps ready, waiting for a worker",
                                value=found["ready"])
        yield GaugeMetricFamily("waypost_oldest_ready_seconds",
                                "Age of the oldest ready step", value=found["oldest_ready"])
        yield GaugeMetricFamily("waypost_timers_due", "Sleeps, gate timeouts and escalations "
                                "due and not yet fired", value=found["timers_due"])
        expiries = CounterMetricFamily("waypost_attempts_expired", "Attempts ended by the "
                                       "sweeper: lost lease, timeout, missed heartbeats",
                                       labels=["reason"])
        for reason in ("lost", "timeout", "heartbeat"):
            expiries.add_metric([reason], found["expiries"].get(reason, 0))
        yield expiries
        pending = GaugeMetricFamily("waypost_deliveries_pending", "Deliveries not yet done, "
                                    "by handler (running or queued behind their key)",
                                    labels=["handler"])
        for handler, count in sorted(found["deliveries_pending"].items()):
            pending.add_metric([handler], count)
        yield pending


@router.get("/metrics", summary="Prometheus metrics (text format)",
            response_class=Response)
def metrics(request: Request) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(engine(request)))
    body = generate_latest(registry) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE)
