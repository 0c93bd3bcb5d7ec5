"""Runs: start one of a registered definition, list and read them, and what operators do
to them (cancel, resume, events to a machine, gates, a step that needs attention)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ..errors import InputError, UnknownTargetError
from ..masking import mask, mask_call
from ..registry import registry
from ..runtime.engine import Engine
from ..statuses import RUN_STATUSES
from ..vocabulary.task import registered_tasks
from .models import Cancel, Reason, Rejection, SendEvent, Skip, StartRun

router = APIRouter(prefix="/api/v1", tags=["runs"])

Status = Literal[RUN_STATUSES]  # type: ignore[valid-type]
Kind = Literal["dag", "machine", "handler"]


def engine(request: Request) -> Engine:
    found: Engine = request.app.state.engine
    return found


def caller(request: Request) -> str | None:
    name: str | None = request.scope.get("state", {}).get("caller")
    return name


def definitions() -> dict[str, Any]:
    """What a request may start: the flows and machines this server's code registered,
    by name. Nothing in a request is imported or evaluated."""
    return registry.definitions("dag", "machine")


def definition_named(name: str) -> Any:
    known = definitions()
    if name in known:
        return known[name]
    short = [n for n in known if n.rpartition(":")[2] == name]
    if len(short) == 1:
        return known[short[0]]
    if short:
        raise InputError(f"{name!r} names several definitions: {', '.join(sorted(short))}")
    names = sorted(known)
    listed = ", ".join(names[:20]) + (f", and {len(names) - 20} more" if len(names) > 20 else "")
    raise UnknownTargetError(f"no registered flow or machine {name!r} (this server's code "
                             f"has: {listed or 'none; see --app'})")


def moment(text: str | None, what: str, naive_utc: bool = False) -> float | None:
    """Unix seconds of an ISO 8601 time; one without an offset is refused (or, typed in
    the dashboard, `naive_utc`, taken as UTC)."""
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        found = None
    if found is not None and found.tzinfo is None and naive_utc:
        found = found.replace(tzinfo=UTC)
    if found is None or found.tzinfo is None:
        raise InputError(f"{what} is an ISO 8601 time with its offset, not {text!r:.60}")
    return found.timestamp()


@router.get("/definitions", summary="What can be started by name")
def list_definitions() -> list[dict[str, Any]]:
    return [{"name": name, "kind": d.kind} for name, d in sorted(definitions().items())]


@router.post("/runs", status_code=201, summary="Start a run of a registered definition")
def start_run(body: StartRun, request: Request) -> dict[str, Any]:
    target = definition_named(body.definition)
    run_id = engine(request).start(target, body.input, key=body.key, deadline=body.deadline)
    return {"run_id": run_id, "definition": target.name}


@router.get("/runs", summary="Runs, newest first, paged by `cursor`")
def list_runs(
    request: Request,
    status: Status | None = None,
    definition: Annotated[str | None, Query(max_length=1000, description=(
        "A flow, machine or handler: its full name, or the part after the module"))] = None,
    flow: Annotated[str | None, Query(max_length=1000, description=(
        "The older name of `definition`, still accepted (not both)"))] = None,
    kind: Kind | None = None,
    key: Annotated[str | None, Query(max_length=1000)] = None,
    since: Annotated[str | None, Query(description="ISO 8601, created at or after")] = None,
    until: Annotated[str | None, Query(description="ISO 8601, created before")] = None,
    search: Annotated[str | None, Query(max_length=200, description=(
        "Text inside the input's JSON, or NAME=VALUE (a.b=42): runs whose input has that "
        "field at that value"))] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    runs, nxt = engine(request).runs_page(
        status, definition, limit, cursor, flow=flow, kind=kind, key=key,
        since=moment(since, "since"),
        until=moment(until, "until"), search=search or None)
    return {"runs": mask(runs), "next": nxt}


@router.get("/runs/{run_id}", summary="A run with every step (as `waypost show --json`)")
def show_run(run_id: str, request: Request) -> dict[str, Any]:
    eng = engine(request)
    return shown(eng.show(eng.resolve(run_id)))


def shown(view: dict[str, Any]) -> dict[str, Any]:
    """A run as people may see it: secrets masked, by name and, where this server has the
    task's code, by the position of a secret parameter in a step's input."""
    tasks = registered_tasks()
    steps = view.get("steps") or []
    out = dict(mask({k: v for k, v in view.items() if k != "steps"}))
    if "steps" in view:
        out["steps"] = [{**mask(step), "input": masked_input(step["input"], step["task"], tasks)}
                        for step in steps]
    return out


def masked_input(call: Any, task: str | None, tasks: dict[str, Any] | None = None) -> Any:
    """A step's input with its secrets masked, positional ones too where this server has
    the task's code."""
    found = (tasks if tasks is not None else registered_tasks()).get(task or "")
    return mask_call(call, found.params if found else [])


@router.post("/runs/{run_id}/cancel", summary="Cancel an unfinished run")
def cancel_run(run_id: str, body: Cancel, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    by = caller(request)
    reason = f"{body.reason} (by {by})" if by else body.reason
    return {"run_id": full, "steps_ended": eng.cancel(full, reason)}


@router.post("/runs/{run_id}/resume", summary="Continue a failed or cancelled run")
def resume_run(run_id: str, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    return {"run_id": full, "steps_reset": eng.resume(full)}


@router.post("/runs/{target}/events", summary="Send an event to a state machine run")
def send_event(target: str, body: SendEvent, request: Request) -> dict[str, Any]:
    return engine(request).send(target, body.event, body.payload, id=body.id)


@router.post("/runs/{run_id}/gates/{gate}/approve", summary="Approve a waiting gate")
def approve(run_id: str, gate: str, body: Reason, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    eng.approve(full, gate, by=caller(request))
    return {"run_id": full, "gate": gate, "approved": True, "by": caller(request)}


@router.post("/runs/{run_id}/gates/{gate}/reject", summary="Reject a waiting gate")
def reject(run_id: str, gate: str, body: Rejection, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    eng.reject(full, gate, body.reason, by=caller(request))
    return {"run_id": full, "gate": gate, "approved": False, "by": caller(request)}


@router.post("/runs/{run_id}/steps/{step}/retry", summary="Run a step needing attention again")
def retry_step(run_id: str, step: str, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    eng.retry_step(full, step, by=caller(request))
    return {"run_id": full, "step": step, "action": "retry", "by": caller(request)}


@router.post("/runs/{run_id}/steps/{step}/skip", summary="Skip a step with a given output")
def skip_step(run_id: str, step: str, body: Skip, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    eng.skip_step(full, step, body.output, by=caller(request))
    return {"run_id": full, "step": step, "action": "skip", "by": caller(request)}


@router.post("/runs/{run_id}/steps/{step}/fail", summary="Fail a step for good")
def fail_step(run_id: str, step: str, request: Request) -> dict[str, Any]:
    eng = engine(request)
    full = eng.resolve(run_id)
    eng.fail_step(full, step, by=caller(request))
    return {"run_id": full, "step": step, "action": "fail", "by": caller(request)}
