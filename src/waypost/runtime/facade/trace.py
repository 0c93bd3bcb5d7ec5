"""`waypost trace ID`: one answer to "did it complete?" for everything one cause set off.

Everything an event, a run or a correlation id set in motion shares one correlation id:
the events, the deliveries they started (runs), the child runs those started, and the
events their steps emitted in turn. The trace reads them all and arranges them as the
tree of what caused what, then sums it up in one line.
"""

from __future__ import annotations

from typing import Any

from ... import codec
from ...errors import UnknownTargetError
from ...statuses import FAILED_RUNS, OPEN_RUNS
from ...store.protocol import Tx
from ...store.records import TopicEvent

LIMIT = 10_000


def correlation_of(tx: Tx, ident: str) -> str:
    """The correlation id an event id, a run id or a correlation id stands for."""
    event = tx.topic_event(ident)
    if event is not None:
        return event.correlation_id
    found = tx.run_correlation(ident)
    if found is not None:
        return found
    if tx.correlated_events(ident, 1) or tx.correlated_runs(ident, 1):
        return ident
    raise UnknownTargetError(f"no event, run or correlation id {ident!r}")


def trace(tx: Tx, ident: str) -> dict[str, Any]:
    """The tree (`roots`), the `summary` line and its `status`: complete, in_progress or
    failed."""
    correlation = correlation_of(tx, ident)
    events = tx.correlated_events(correlation, LIMIT)
    runs = tx.correlated_runs(correlation, LIMIT)
    queued = tx.queued_deliveries([e.seq for e in events])
    now = tx.now()
    run_nodes = {r["id"]: _run_node(r, now) for r in runs}
    event_nodes = {e.seq: _event_node(e) for e in events}
    roots: list[dict[str, Any]] = []
    for e in events:
        parent = run_nodes.get(e.cause_run or "")
        (parent["children"] if parent else roots).append(event_nodes[e.seq])
    for r in runs:
        node = run_nodes[r["id"]]
        if r["parent_run"] in run_nodes:
            run_nodes[r["parent_run"]]["children"].append(node)
        elif r["trigger_event"] in event_nodes:
            event_nodes[r["trigger_event"]]["children"].append(node)
        else:
            roots.append(node)
    for q in queued:
        event_nodes[q["event_seq"]]["children"].append(
            {"type": "delivery", "run_id": q["run_id"], "definition": q["subscription"],
             "status": "queued", "key": q["key"],
             "waiting_for": "the delivery of an earlier event with the same key"})
    roots.sort(key=lambda n: n.get("at") or 0.0)
    status, summary = _summary(runs, run_nodes, queued)
    return {"correlation_id": correlation, "roots": roots, "status": status,
            "summary": summary, "events": len(events), "runs": len(runs)}


def _event_node(e: TopicEvent) -> dict[str, Any]:
    return {"type": "event", "id": e.id, "seq": e.seq, "topic": e.topic, "key": e.key,
            "at": e.created_at, "emitted_by": None if e.cause_run is None else
            {"run": e.cause_run, "step": e.cause_step}, "children": []}


def _run_node(r: dict[str, Any], now: float) -> dict[str, Any]:
    started, finished = r["started_at"], r["finished_at"]
    duration = None if started is None else (finished or now) - started
    error = None
    if r["error"]:
        try:
            error = codec.loads(r["error"])
        except (ValueError, RecursionError):
            error = {"message": r["error"]}
    node: dict[str, Any] = {"type": "run", "id": r["id"], "definition": r["definition"],
                            "status": r["status"], "at": r["created_at"],
                            "duration": duration, "error": error, "children": []}
    if r["parent_step"]:
        node["parent_step"] = r["parent_step"]
    return node


def _summary(runs: list[dict[str, Any]], nodes: dict[str, dict[str, Any]],
             queued: list[dict[str, Any]]) -> tuple[str, str]:
    failed = [r for r in runs if r["status"] in FAILED_RUNS]
    if failed:
        parts = []
        for r in failed[:5]:
            error = nodes[r["id"]]["error"] or {}
            where = f" at step {error['step']}" if error.get("step") else ""
            parts.append(f"run {r['id']} ({r['definition']}) {r['status']}{where}: "
                         f"{error.get('type')}: {error.get('message')}")
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        return "failed", "failed: " + "; ".join(parts) + more
    open_ = [r for r in runs if r["status"] in OPEN_RUNS]
    if open_ or queued:
        pending = [f"{r['definition']} ({r['id']}, {r['status']})" for r in open_[:5]]
        pending += [f"{q['subscription']} (queued behind key {q['key']!r})"
                    for q in queued[:max(0, 5 - len(pending))]]
        count = len(open_) + len(queued)
        more = f" and {count - len(pending)} more" if count > len(pending) else ""
        return "in_progress", f"in progress: {count} pending: " + ", ".join(pending) + more
    if not runs:
        return "complete", "complete: nothing was delivered (no handler took these events)"
    return "complete", f"complete: {len(runs)} run{'s' if len(runs) > 1 else ''} succeeded"
