"""The JSON view of runs and steps that `waypost show --json` prints.

This shape is a stable interface scripts rely on; add fields, never rename them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from .. import codec
from ..store.records import LimitRow


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 6)


def limit_view(row: LimitRow, granted: int, in_use: int) -> dict[str, Any]:
    """A limit as `waypost limits --json` prints it; `full` says what stops the next
    attempt from starting now."""
    full = []
    if row.rate_count is not None and granted >= row.rate_count:
        full.append(f"rate {row.rate}")
    if row.concurrency is not None and in_use >= row.concurrency:
        full.append(f"concurrency {row.concurrency}")
    return {"name": row.name, "rate": row.rate, "concurrency": row.concurrency,
            "period": row.rate_period, "granted": granted if row.rate else None,
            "in_use": in_use, "full": full}


def run_view(run: dict[str, Any], steps: list[dict[str, Any]] | None,
             attempts: list[dict[str, Any]] | None,
             served: set[str] | None = None, uses: dict[str, list[str]] | None = None,
             limits: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """`uses`: the limits each node of the run's graph uses; `limits`: those limits, as
    `limit_view` gives them."""
    view = {
        "id": run["id"], "flow": run["flow"], "status": run["status"], "key": run["key"],
        "input": codec.loads(run["input"]), "input_checksum": run["input_checksum"],
        "output": codec.loads(run["output"]), "error": codec.loads(run["error"]),
        "created_at": iso(run["created_at"]), "started_at": iso(run["started_at"]),
        "finished_at": iso(run["finished_at"]),
        "duration": _duration(run["started_at"], run["finished_at"]),
        "definition": run["fingerprint"],
    }
    if steps is not None:
        history: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for a in attempts or []:
            history[a["step_id"]].append({
                "attempt": a["attempt"], "outcome": a["outcome"], "worker": a["worker"],
                "error": codec.loads(a["error"]), "started_at": iso(a["started_at"]),
                "finished_at": iso(a["finished_at"])})
        view["steps"] = [step_view(s, history.get(s["id"], []), served,
                                   (uses or {}).get(s["node"], []), limits or {})
                         for s in steps]
    return view


def step_view(step: dict[str, Any], history: list[dict[str, Any]],
              served: set[str] | None = None, uses: list[str] | None = None,
              limits: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    waiting = None
    full = [f"limit {name} ({', '.join(limits[name]['full'])})"
            for name in uses or [] if limits and limits.get(name, {}).get("full")]
    if step["status"] == "ready" and served is not None and step["task"] not in served:
        waiting = f"no live worker serves task {step['task']}"
    elif step["status"] == "ready" and full:
        waiting = "for " + ", ".join(full)
    elif step["status"] == "running" and step["completion_token"]:
        waiting = "for another system to complete it with its completion token"
    return {
        "name": step["name"], "task": step["task"], "kind": step["kind"],
        "status": step["status"], "attempts": step["attempts"],
        "max_attempts": step["max_attempts"], "idempotency_key": step["idempotency_key"],
        "input": codec.loads(step["input"]), "input_checksum": step["input_checksum"],
        "output": codec.loads(step["output"]), "error": codec.loads(step["error"]),
        "started_at": iso(step["started_at"]), "finished_at": iso(step["finished_at"]),
        "duration": _duration(step["started_at"], step["finished_at"]),
        "ready_at": iso(step["ready_at"]) if step["status"] == "ready" else None,
        "worker": step["lease_owner"], "history": history, "waiting": waiting,
        "heartbeat": step["heartbeat"], "heartbeat_at": iso(step["heartbeat_at"]),
        "heartbeat_details": codec.loads(step["heartbeat_details"]),
        "suspicious": step["suspicious"], "completion_token": step["completion_token"],
        "uses": list(uses or []),
    }
