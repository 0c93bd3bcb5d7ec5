"""The dashboard: pages rendered on the server (Jinja2), kept live and made to act with
htmx, which is shipped in the package (static/): nothing is fetched from anywhere at run
time. Every page and action is behind the same token as the API (a cookie set by
/login); every action asks for confirmation, and is recorded under the token's name.
What a page shows of user data is masked as the API masks it."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ... import codec
from ...errors import UnknownTargetError, WaypostError
from ...masking import mask
from ...statuses import OPEN_RUNS, RUN_STATUSES
from ..auth import COOKIE, LOGIN, token_name
from ..runs import caller, engine, moment, shown
from ..system import dead_letter
from .diagram import run_graph
from .timeline import LEGEND, timelines

router = APIRouter(include_in_schema=False)
_env = Environment(loader=PackageLoader("waypost.api.dashboard", "templates"),
                   autoescape=select_autoescape(default=True))
_env.globals["open_statuses"] = OPEN_RUNS
_STATIC = {"style.css": "text/css", "htmx.min.js": "text/javascript",
           "live.js": "text/javascript"}
_FILTERS = ("status", "kind", "definition", "key", "search", "since", "until")


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _env.get_template(template).render(caller=caller(request), **context)
    return HTMLResponse(html, status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return _page(request, "error.html", status, page="", message=message, code=status)


@router.get("/ui/static/{name}")
def static(name: str) -> Response:
    if name not in _STATIC:
        raise UnknownTargetError(f"no static file {name!r}")
    data = (resources.files("waypost.api.dashboard") / "static" / name).read_bytes()
    return Response(data, media_type=_STATIC[name],
                    headers={"Cache-Control": "public, max-age=3600"})


@router.get(LOGIN)
def login_form(request: Request) -> HTMLResponse:
    return _page(request, "login.html", page="Sign in")


async def _form(request: Request) -> dict[str, str]:
    """A posted form's fields (the first value of each)."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    return {k: v[0] for k, v in fields.items()}


@router.post(LOGIN)
async def login(request: Request) -> Response:
    token = (await _form(request)).get("token", "").strip()
    tokens = request.app.state.tokens
    if tokens is not None and token_name(tokens, token) is None:
        return _page(request, "login.html", 401, page="Sign in", error="That token is not known.")
    answer = RedirectResponse("/ui/", 303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return answer


@router.get("/")
def root() -> Response:
    return RedirectResponse("/ui/", 303)


def _query(request: Request) -> dict[str, str]:
    return {k: v for k in _FILTERS if (v := request.query_params.get(k, "").strip())}


def _runs(request: Request) -> dict[str, Any]:
    q = _query(request)
    cursor = request.query_params.get("cursor") or None

    runs, nxt = engine(request).runs_page(
        q.get("status"), q.get("definition"), 50, cursor, kind=q.get("kind"), key=q.get("key"),
        since=moment(q.get("since"), "From", naive_utc=True),
        until=moment(q.get("until"), "Until", naive_utc=True), search=q.get("search"))
    return {"runs": mask(runs), "next": nxt, "q": q, "query": urlencode(q),
            "statuses": RUN_STATUSES}


@router.get("/ui/")
def runs_page(request: Request) -> HTMLResponse:
    return _page(request, "runs.html", page="Runs", **_runs(request))


@router.get("/ui/runs-table")
def runs_table(request: Request) -> HTMLResponse:
    return _page(request, "runs_table.html", **_runs(request))


@router.get("/ui/runs/{run_id}")
def run_page(run_id: str, request: Request) -> HTMLResponse:
    eng = engine(request)
    view = shown(eng.show(eng.resolve(run_id)))
    try:
        kind, body = eng.definition(view["definition"])
        graph = run_graph(kind, body, view)
    except (UnknownTargetError, ValueError, KeyError, TypeError):
        graph = '<p class="mute">The graph of this definition cannot be drawn.</p>'
    opened = request.query_params.get("step") or next(
        (s["name"] for s in view.get("steps", []) if s["status"] == "failed"), None)
    return _page(request, "run.html", page="Runs", run=view, graph=graph,
                 timelines=timelines(view), legend=LEGEND, opened=opened)


@router.get("/ui/trace/{ident}")
def trace_page(ident: str, request: Request) -> HTMLResponse:
    return _page(request, "trace.html", page="Runs", found=mask(engine(request).trace(ident)))


@router.get("/ui/dead-letters")
def letters_page(request: Request) -> HTMLResponse:
    status = request.query_params.get("status", "dead")
    letters = engine(request).dead_letters(None if status == "all" else "dead", None, 200)
    return _page(request, "dead_letters.html", page="Dead letters", letters=mask(letters))


@router.get("/ui/dead-letters/{letter}")
def letter_page(letter: int, request: Request) -> HTMLResponse:
    return _page(request, "dead_letter.html", page="Dead letters",
                 d=dead_letter(letter, request))


@router.get("/ui/workers")
def workers_page(request: Request) -> HTMLResponse:
    rows = [{"cells": [w["id"], w["host"], w["pid"], f"{w['heartbeat_age']:.1f}s ago",
                       ", ".join(w["tasks"])]} for w in engine(request).workers()]
    return _page(request, "table.html", page="Workers", rows=rows, actions=False,
                 columns=["Worker", "Host", "Pid", "Heartbeat", "Tasks"],
                 empty="No live worker.")


@router.get("/ui/limits")
def limits_page(request: Request) -> HTMLResponse:
    rows = [{"cells": [r["name"], r["rate"] or "—", r["concurrency"] or "—", r["in_use"],
                       "—" if r["granted"] is None else f"{r['granted']} of {r['rate']}",
                       ", ".join(r["full"])]} for r in engine(request).limits()]
    return _page(request, "table.html", page="Limits", rows=rows, actions=False,
                 columns=["Limit", "Rate", "Concurrency", "Running", "In window", "Full"],
                 empty="No limit.")


@router.get("/ui/schedules")
def schedules_page(request: Request) -> HTMLResponse:
    rows = []
    for s in engine(request).schedules():
        verb = "resume" if s["paused"] else "pause"
        rows.append({"cells": [s["name"], s["when"], s["missed"],
                               "paused" if s["paused"] else s["next_fire_local"],
                               s["last_fire"] or "—", s["last_run"] or "—"],
                     "actions": [(verb.capitalize(), f"/ui/schedules/{s['name']}/{verb}",
                                  f"{verb.capitalize()} schedule {s['name']}?")]})
    return _page(request, "table.html", page="Schedules", rows=rows, actions=True,
                 columns=["Schedule", "When", "Missed", "Next fire", "Last fire", "Last run"],
                 empty="No schedule (a worker stores its code's when it starts).")


# -- actions: htmx posts; success reloads the page, a refusal is shown in #flash ----------------
async def _act(request: Request, action: Callable[[dict[str, str]], Any]) -> Response:
    form = await _form(request)
    try:
        await run_in_threadpool(action, form)
    except WaypostError as exc:
        return HTMLResponse(_env.from_string("{{ m }}").render(m=str(exc)))
    return Response(status_code=204, headers={"HX-Refresh": "true"})


@router.post("/ui/runs/{run_id}/resume")
async def resume(run_id: str, request: Request) -> Response:
    eng = engine(request)
    return await _act(request, lambda f: eng.resume(eng.resolve(run_id)))


@router.post("/ui/runs/{run_id}/cancel")
async def cancel(run_id: str, request: Request) -> Response:
    eng, by = engine(request), caller(request)
    reason = f"cancelled in the dashboard{f' by {by}' if by else ''}"
    return await _act(request, lambda f: eng.cancel(eng.resolve(run_id), reason))


@router.post("/ui/runs/{run_id}/gates/{gate}/{verb}")
async def decide(run_id: str, gate: str, verb: str, request: Request) -> Response:
    eng, by = engine(request), caller(request)

    def act(form: dict[str, str]) -> None:
        full = eng.resolve(run_id)
        if verb == "approve":
            eng.approve(full, gate, by=by)
        elif verb == "reject":
            eng.reject(full, gate, form.get("reason") or "rejected in the dashboard", by=by)
        else:
            raise UnknownTargetError(f"a gate is approved or rejected, not {verb!r}")

    return await _act(request, act)


@router.post("/ui/runs/{run_id}/steps/{step}/{verb}")
async def answer(run_id: str, step: str, verb: str, request: Request) -> Response:
    eng, by = engine(request), caller(request)

    def act(form: dict[str, str]) -> None:
        full = eng.resolve(run_id)
        if verb == "retry":
            eng.retry_step(full, step, by=by)
        elif verb == "skip":
            eng.skip_step(full, step, None, by=by)
        elif verb == "fail":
            eng.fail_step(full, step, by=by)
        else:
            raise UnknownTargetError(f"a step is retried, skipped or failed, not {verb!r}")

    return await _act(request, act)


@router.post("/ui/dead-letters/{letter}/replay")
async def replay(letter: int, request: Request) -> Response:
    eng, by = engine(request), caller(request)

    def act(form: dict[str, str]) -> None:
        text = form.get("input", "").strip()
        try:
            patched = codec.loads(text) if text else None
        except ValueError as exc:
            raise WaypostError(f"the patched input is not JSON: {exc}") from None
        eng.replay(letter, patched, by=by)

    return await _act(request, act)


@router.post("/ui/schedules/{name}/{verb}")
async def schedule(name: str, verb: str, request: Request) -> Response:
    eng = engine(request)

    def act(form: dict[str, str]) -> None:
        if verb == "pause":
            eng.pause_schedule(name)
        elif verb == "resume":
            eng.resume_schedule(name)
        else:
            raise UnknownTargetError(f"a schedule is paused or resumed, not {verb!r}")

    return await _act(request, act)
