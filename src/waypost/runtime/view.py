"""The JSON view of runs and steps that `waypost show --json` prints.

This shape is a stable interface scripts rely on; add fields, never rename them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from .. import codec


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 6)


def run_view(run: dict[str, Any], steps: list[dict[str, Any]] | None,
             attempts: list[dict[str, Any]] | None,
             served: set[str] | None = None) -> dict[str, Any]:
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
        view["steps"] = [step_view(s, history.get(s["id"], []), served) for s in steps]
    return view


def step_view(step: dict[str, Any], history: list[dict[str, Any]],
              served: set[str] | None = None) -> dict[str, Any]:
    waiting = None
    if step["status"] == "ready" and served is not None and step["task"] not in served:
        waiting = f"no live worker serves task {step['task']}"
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
    }
