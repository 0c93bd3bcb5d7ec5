"""The JSON view of runs and steps that `waypost show --json` prints.

This shape is a stable interface scripts rely on; add fields, never rename them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ... import codec
from ...moments import iso
from ...store.records import LimitRow, TopicEvent, WorkerRow
from ..seam import Driver, StepPolicy


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


def worker_view(w: WorkerRow, now: float) -> dict[str, Any]:
    """A worker as `waypost workers --json` prints it; `heartbeat_age` is in seconds, by
    the database's clock."""
    return {"id": w.id, "incarnation": w.incarnation, "host": w.host, "pid": w.pid,
            "started_at": iso(w.started_at), "heartbeat_at": iso(w.heartbeat_at),
            "heartbeat_age": round(max(0.0, now - w.heartbeat_at), 3), "lease": w.lease,
            "tasks": w.tasks}


def run_view(run: dict[str, Any], steps: list[dict[str, Any]] | None,
             attempts: list[dict[str, Any]] | None,
             served: set[str] | None = None, driver: Driver | None = None,
             letters: list[dict[str, Any]] | None = None,
             budgets: dict[str, dict[str, Any]] | None = None,
             limits: dict[str, dict[str, Any]] | None = None,
             holders: dict[str, WorkerRow] | None = None,
             now: float | None = None,
             transitions: list[dict[str, Any]] | None = None,
             events: list[dict[str, Any]] | None = None,
             others: list[dict[str, str]] | None = None,
             parent: tuple[str, str] | None = None,
             children: list[dict[str, Any]] | None = None,
             trigger: TopicEvent | None = None) -> dict[str, Any]:
    """`driver`: the run's (edges, policies); `letters`: its dead letters;
    `budgets`: retry budgets by task; `limits`: the limits its steps use, as `limit_view`
    gives them; `holders`: the registered workers holding its running steps, as of the
    database's clock `now`; `transitions` and `events`: a state machine's, oldest first (a
    machine's view adds `state`, `data`, `transitions` and `events`); `others`: live
    workers whose code defines the machine differently (`code_differs`); `parent` (run,
    step) and `children`: the runs linked to this one as child runs; `trigger`: the event
    that started it (a delivery, a triggered flow or machine).

    The definition's name is shown as `flow` and its fingerprint as `definition` (and
    `fingerprint`): both field names are older than the rename of the column, and scripts
    read them, so neither changes meaning."""
    view = {
        "id": run["id"], "flow": run["definition"], "status": run["status"],
        "key": run["key"],
        "input": codec.loads(run["input"]), "input_checksum": run["input_checksum"],
        "output": codec.loads(run["output"]), "error": codec.loads(run["error"]),
        "created_at": iso(run["created_at"]), "started_at": iso(run["started_at"]),
        "finished_at": iso(run["finished_at"]),
        "duration": _duration(run["started_at"], run["finished_at"]),
        "definition": run["fingerprint"], "fingerprint": run["fingerprint"],
    }
    view["parent"] = None if parent is None else {"run": parent[0], "step": parent[1]}
    view["children"] = [{"id": c["id"], "flow": c["definition"], "status": c["status"],
                         "step": c["step"]} for c in children or []]
    if steps is not None:
        view["trigger"] = None if trigger is None else {
            "event": trigger.id, "topic": trigger.topic, "key": trigger.key,
            "emitted_at": iso(trigger.created_at)}
    if transitions is not None:
        last = transitions[-1] if transitions else None
        view["kind"] = "machine"
        view["state"] = last["to_state"] if last else None
        view["data"] = codec.loads(last["data_after"]) if last else None
        view["transitions"] = [transition_view(t) for t in transitions]
        view["events"] = [event_view(e) for e in events or []]
        view["code_differs"] = others or []
    if steps is not None:
        history: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for a in attempts or []:
            history[a["step_id"]].append(attempt_view(a))
        view["steps"] = [step_view(s, history.get(s["id"], []), served, driver, budgets or {},
                                   limits or {}, holders, now) for s in steps]
        view["dead_letters"] = [{"id": d["id"], "step": d["step"], "status": d["status"]}
                                for d in letters or []]
    return view


def transition_view(t: dict[str, Any]) -> dict[str, Any]:
    return {"seq": t["seq"], "from": t["from_state"], "to": t["to_state"],
            "trigger": t["trigger"], "event_id": t["event_id"], "at": iso(t["at"]),
            "data_before": codec.loads(t["data_before"]),
            "data_after": codec.loads(t["data_after"])}


def event_view(e: dict[str, Any]) -> dict[str, Any]:
    return {"seq": e["seq"], "name": e["name"], "event_id": e["event_id"],
            "payload": codec.loads(e["payload"]), "status": e["status"], "state": e["state"],
            "created_at": iso(e["created_at"]), "handled_at": iso(e["handled_at"])}


def attempt_view(a: dict[str, Any]) -> dict[str, Any]:
    """An attempt, or (numbered below zero in the store) a decision by a person or a timer:
    those have no attempt number and `worker` says who decided."""
    return {"attempt": a["attempt"] if a["attempt"] > 0 else None, "outcome": a["outcome"],
            "worker": a["worker"], "error": codec.loads(a["error"]),
            "started_at": iso(a["started_at"]), "finished_at": iso(a["finished_at"])}


def letter_view(row: dict[str, Any],
                attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    view = {"id": row["id"], "run_id": row["run_id"], "step": row["step"], "task": row["task"],
            "status": row["status"], "attempts": row["attempts"],
            "input": codec.loads(row["input"]), "error": codec.loads(row["error"]),
            "created_at": iso(row["created_at"]), "replayed_at": iso(row["replayed_at"]),
            "replay_input": codec.loads(row["replay_input"])}
    if attempts is not None:
        view["history"] = [attempt_view(a) for a in attempts]
    return view


#: Without a lease on record, what a worker is taken to renew every third of.
_DEFAULT_LEASE = 30.0


def _held_by(step: dict[str, Any], holders: dict[str, WorkerRow], now: float) -> str | None:
    """Who holds a running step, when that worker has stopped renewing (crashed, paused,
    cut off): since when, and when its lease runs out. None while it renews."""
    owner, expires = step["lease_owner"], step["lease_expires_at"]
    worker = holders.get(owner)
    if worker is None:
        who = f"worker {owner}, which is no longer registered"
    else:
        lease = worker.lease or _DEFAULT_LEASE
        if now - worker.heartbeat_at <= 2 * lease / 3:  # renews every lease/3
            return None
        who = (f"worker {owner} (pid {worker.pid} on {worker.host}), silent since "
               f"{iso(worker.heartbeat_at)} (crashed, paused or cut off)")
    if expires is None:
        return f"held by {who}"
    if expires > now:
        return (f"held by {who}; its lease runs out at {iso(expires)}, then a running "
                "worker gives the step back")
    return (f"held by {who}; its lease ran out at {iso(expires)}: the next worker to run "
            "gives the step back")


def _waiting(step: dict[str, Any], policy: StepPolicy | None, served: set[str] | None,
             holders: dict[str, WorkerRow] | None = None, now: float | None = None,
             ) -> str | None:
    status, due = step["status"], iso(step["ready_at"])
    if status == "running" and step["lease_owner"] and holders is not None and now is not None:
        return _held_by(step, holders, now)
    if status == "ready" and served is not None and step["task"] not in served:
        return f"no live worker serves task {step['task']}"
    if status == "running" and step["completion_token"] and not step["lease_owner"]:
        return "for another system to complete it with its completion token"
    if status == "waiting" and step["kind"] == "sleep":
        return f"until {due}"
    if status == "waiting" and step["kind"] == "event":
        then = f" (until {due}, then {(policy and policy.on_timeout) or 'fail'})" if due else ""
        return f"for a matching event (wp.wait_for){then}"
    if status == "waiting":
        then = f" (until {due}, then {policy and policy.on_timeout})" if due else ""
        return f"for approval: waypost approve RUN {step['name']}{then}"
    if status == "needs_attention":
        if step["kind"] == "gate":
            return f"for an operator: waypost approve or reject RUN {step['name']}"
        fallback = policy.on_escalation_timeout if policy else "fail"
        then = f" (until {due}; then, unanswered, {fallback})" if due else ""
        return f"for an operator: waypost retry, skip or fail RUN {step['name']}{then}"
    return None


def step_view(step: dict[str, Any], history: list[dict[str, Any]],
              served: set[str] | None = None, driver: Driver | None = None,
              budgets: dict[str, dict[str, Any]] | None = None,
              limits: dict[str, dict[str, Any]] | None = None,
              holders: dict[str, WorkerRow] | None = None,
              now: float | None = None) -> dict[str, Any]:
    undo = step["kind"] == "undo"
    policy: StepPolicy | None = None
    needs: list[str] = []
    after: list[str] = []
    if driver is not None:
        try:
            policy = driver.policy(step["node"], step["kind"])
            if step["kind"] not in ("item", "undo"):
                needs, after = driver.edges(step["node"])
        except (KeyError, AssertionError):
            policy = None  # a step its definition does not know: shown as stored
    extra: dict[str, Any] = {
        "needs": list(needs),
        "after": list(after),
        "compensates": step["name"].split(":", 1)[1] if undo else None,
        "destructive": bool(policy and policy.destructive),
        "due_at": iso(step["ready_at"]) if step["status"] in ("waiting", "needs_attention")
        else None,
        "retry_budget": None,
    }
    if policy is not None and policy.retry_budget is not None:
        count, period = policy.retry_budget
        spent = (budgets or {}).get(step["task"], {})
        extra["retry_budget"] = {"retries": count, "per_seconds": period,
                                 "used": spent.get("used", 0),
                                 "refused": spent.get("refused", 0),
                                 "refused_total": spent.get("refused_total", 0)}
    uses = list(policy.uses) if policy else []
    full = [f"limit {name} ({', '.join(limits[name]['full'])})"
            for name in uses if limits and limits.get(name, {}).get("full")]
    waiting = _waiting(step, policy, served, holders, now)
    if waiting is None and step["status"] == "ready" and full:
        waiting = "for " + ", ".join(full)
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
        "uses": uses,
        **extra,
    }
