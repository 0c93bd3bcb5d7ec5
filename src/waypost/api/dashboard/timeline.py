"""A step's timeline on the run page: every attempt as a bar on the run's time axis, the
wait before each retry (backoff, then the queue) as a hatched bar, the last heartbeat as a
tick, and people's and timers' decisions as marks, so "why did this take four minutes"
is answered by looking, not by reading timestamps."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

#: Bar colour per attempt outcome; any other outcome (failed, cancelled...) is red.
OUTCOME_COLOR = {"succeeded": "#1f9d55", "running": "#d69e2e", "lost": "#805ad5",
                 "timeout": "#dd6b20", "heartbeat": "#dd6b20", "cancelled": "#718096"}
FAILED = "#d64545"

#: What each mark means, for the legend under the steps table.
LEGEND = [("bar", "#1f9d55", "succeeded"), ("bar", FAILED, "failed"),
          ("bar", "#d69e2e", "running"), ("bar", "#805ad5", "lost (worker gone)"),
          ("bar", "#dd6b20", "timed out or missed heartbeats"),
          ("wait", "", "waiting to retry (backoff, then queue)"),
          ("tick", "", "last heartbeat"), ("mark", "", "decision (approve, retry, skip...)")]


def _ts(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _attempts(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The step's attempts in order. The history holds the ones that ended otherwise than
    well; the one running now, or the one that succeeded, is the step itself."""
    tries = sorted((a for a in step.get("history", []) if a.get("attempt")),
                   key=lambda a: a["attempt"])
    latest = tries[-1]["attempt"] if tries else 0
    running = step["status"] == "running"
    if step.get("started_at") and latest < max(step["attempts"], 1) and (
            running or step.get("finished_at")):
        tries.append({"attempt": max(step["attempts"], 1),
                      "outcome": "running" if running else step["status"],
                      "started_at": step["started_at"],
                      "finished_at": None if running else step["finished_at"],
                      "worker": step.get("worker")})
    return tries


def _retry_due(step: dict[str, Any]) -> float | None:
    """When a step that failed an attempt and is waiting out its backoff becomes ready."""
    if step["status"] == "ready" and step.get("attempts", 0) > 0:
        return _ts(step.get("ready_at"))
    return None


def timelines(view: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per step name, the marks to draw: each has a `shape` (bar, wait, tick or mark), a
    `left` and `width` in percent of the run's time axis, and a `title` to hover."""
    now = time.time()
    steps = view.get("steps", [])
    start = _ts(view.get("started_at") or view.get("created_at")) or now
    end = _ts(view.get("finished_at")) or now
    for step in steps:  # a backoff that runs past now stretches the axis to show it
        end = max(end, _retry_due(step) or end)
    span = max(end - start, 1e-3)

    def place(a: float, b: float, shape: str, color: str, title: str) -> dict[str, Any]:
        left = max(0.0, min(100.0, 100 * (a - start) / span))
        width = 0.0 if shape in ("tick", "mark") else max(
            0.8, min(100.0 - left, 100 * (b - a) / span))
        return {"shape": shape, "left": round(left, 2), "width": round(width, 2),
                "color": color, "title": title}

    out: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        runs_code = step["kind"] in ("task", "item", "undo")
        marks = []
        previous_end: float | None = None
        for a in _attempts(step):
            a_start = _ts(a.get("started_at")) or start
            a_end = _ts(a.get("finished_at")) or now
            if previous_end is not None and a_start > previous_end:
                marks.append(place(previous_end, a_start, "wait", "",
                                   f"{a_start - previous_end:.2f}s waiting to retry "
                                   f"before attempt {a['attempt']}"))
            who = f" on {a['worker']}" if a.get("worker") else ""
            marks.append(place(a_start, a_end, "bar", OUTCOME_COLOR.get(a["outcome"], FAILED),
                               f"{'attempt ' + str(a['attempt']) if runs_code else step['kind']}: "
                               f"{a['outcome']}{who}, "
                               f"{a.get('started_at')} → {a.get('finished_at') or 'now'} "
                               f"({a_end - a_start:.2f}s)"))
            previous_end = a_end
        due = _retry_due(step)
        if due is not None and previous_end is not None and due > previous_end:
            marks.append(place(previous_end, due, "wait", "",
                               f"backoff until {step['ready_at']}, then attempt "
                               f"{step['attempts'] + 1}"))
        beat = _ts(step.get("heartbeat_at"))
        if beat is not None and step["status"] == "running":
            marks.append(place(beat, beat, "tick", "", f"last heartbeat {step['heartbeat_at']}"))
        for d in step.get("history", []):
            if d.get("attempt") is None and d.get("finished_at"):
                at = _ts(d["finished_at"]) or start
                by = f" by {d['worker']}" if d.get("worker") else ""
                marks.append(place(at, at, "mark", "", f"{d['outcome']}{by} at {d['finished_at']}"))
        out[step["name"]] = marks
    return out
