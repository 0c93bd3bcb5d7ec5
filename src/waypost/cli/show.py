"""How `waypost show` lays out a run for a person: the run, its machine's state and
transitions if it is one, then each step with only the lines that say something about it."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from .common import STATUS_STYLE, out, secs, short


def print_run(view: dict[str, Any]) -> None:
    style = STATUS_STYLE.get(view["status"], "")
    out.print(f"[bold]run[/] {view['id']}  [bold]definition[/] {escape(view['flow'])}  "
              f"[bold]status[/] [{style}]{view['status']}[/]  "
              f"[bold]key[/] {escape(view['key'] or '-')}")
    out.print(f"input {short(view['input'], 200)}  ({view['input_checksum']})", markup=False)
    if view["status"] == "succeeded":
        out.print(f"output {short(view['output'], 200)}", markup=False)
    if view["error"]:
        e = view["error"]
        out.print(f"[red]error[/] at step {escape(str(e.get('step')))}: "
                  f"{escape(str(e.get('type')))}: {escape(str(e.get('message')))}")
    if view["parent"]:
        out.print(f"[bold]child of[/] run {view['parent']['run']} "
                  f"(step {escape(view['parent']['step'])})")
    for child in view["children"]:
        style = STATUS_STYLE.get(child["status"], "")
        out.print(f"[bold]child[/] run {child['id']}  {escape(child['flow'])}  "
                  f"[{style}]{child['status']}[/]  (step {escape(child['step'])})")
    if view.get("kind") == "machine":
        _print_machine(view)
    for step in view["steps"]:
        _print_step(step)


def _print_machine(view: dict[str, Any]) -> None:
    out.print(f"[bold]state[/] {escape(str(view['state']))}  "
              f"[bold]data[/] {escape(short(view['data'], 160))}")
    for other in view["code_differs"]:
        out.print(f"[yellow]warning:[/] worker {escape(other['worker'])} has another "
                  f"definition of this machine ({other['fingerprint'][:19]}…): it cannot "
                  "evaluate this run's guards")
    for t in view["transitions"]:
        via = t["trigger"] + (f" {t['event_id']}" if t["event_id"] else "")
        out.print(f"  {t['seq']:>4}  {(t['at'] or '')[11:23]}  {escape(str(t['from'] or '-'))} "
                  f"→ {escape(t['to'])}  ({escape(via)})")


def _print_step(s: dict[str, Any]) -> None:
    style = STATUS_STYLE.get(s["status"], "")
    times = ""
    if s["started_at"]:
        times = f"  {s['started_at'][11:23]} → {(s['finished_at'] or '…')[11:23]}"
        times += f" ({secs(s['duration'])})" if s["duration"] is not None else ""
    attempts = f"{s['attempts']}/{s['max_attempts']} attempts"
    flag = "  [bold red]suspicious: missed 2 heartbeats[/]" if s["suspicious"] else ""
    out.print(f"\n[bold]{escape(s['name'])}[/]  [{style}]{s['status']}[/]  {attempts}{times}"
              f"{flag}")
    for label, value in _step_rows(s):
        out.print(f"  {label:<8} {value}", markup=False)
    for attempt in s["history"]:
        e = attempt["error"] or {}
        if attempt["attempt"] is None:  # a decision by a person or a timer
            who = attempt["worker"] or "(timer)"
            why = f": {e.get('message')}" if e.get("message") else ""
            out.print(f"  {attempt['outcome']} by {who} at {attempt['finished_at']}{why}",
                      markup=False)
            continue
        out.print(f"  attempt {attempt['attempt']} {attempt['outcome']}: "
                  f"{e.get('type')}: {e.get('message')}", markup=False)
    if s["error"] and s["error"].get("traceback"):
        out.print("  " + s["error"]["traceback"].rstrip().replace("\n", "\n  "), markup=False)
    elif s["error"] and not s["history"]:
        out.print(f"  error    {s['error'].get('type')}: {s['error'].get('message')}",
                  markup=False)


def _step_rows(s: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("input", f"{short(s['input'], 120)}  {s['input_checksum']}"
         if s["input"] is not None else "-"),
        ("key", s["idempotency_key"])]
    if s["needs"] or s["after"]:
        rows.append(("after", ", ".join([*s["needs"], *(f"{a} (order only)" for a in s["after"])])))
    if s["destructive"]:
        rows.append(("note", "destructive: cannot be undone"))
    if s["retry_budget"]:
        b = s["retry_budget"]
        rows.append(("budget", f"{b['retries']} retries per {b['per_seconds']:g}s across runs: "
                               f"{b['used']} used, {b['refused']} refused this window "
                               f"({b['refused_total']} refused in all)"))
    if s["due_at"]:
        rows.append(("due", s["due_at"]))
    if s["status"] == "succeeded":
        rows.append(("output", short(s["output"], 160)))
    if s["ready_at"]:
        rows.append(("ready at", s["ready_at"]))
    if s["waiting"]:
        rows.append(("waiting", s["waiting"]))
    if s["heartbeat_at"] and s["status"] == "running":
        rows.append(("beat", f"{s['heartbeat_at'][11:23]} {short(s['heartbeat_details'], 80)}"))
    if s["status"] == "running" and s["worker"]:
        rows.append(("worker", s["worker"]))
    return rows
