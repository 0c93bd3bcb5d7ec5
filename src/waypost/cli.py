"""The `waypost` command."""

from __future__ import annotations

import getpass
import itertools
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import codec
from .errors import InputError, WaypostError
from .statuses import RUN_STATUSES
from .store import DEFAULT_URL

# Piped output keeps every value on one line, so `waypost runs | grep KEY` works.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "ready": "cyan",
                "pending": "dim", "upstream_failed": "magenta", "cancelled": "magenta",
                "waiting": "blue", "needs_attention": "bold red", "compensating": "yellow",
                "compensated": "magenta", "compensation_failed": "bold red"}



def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    sys.exit(code)


class _Group(click.Group):
    """Turns every WaypostError, and click's own usage errors, into one clear line and its
    exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WaypostError as exc:
            fail(str(exc).replace("[", "\\["), exc.exit_code)

    def main(self, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        given = list(sys.argv[1:] if args is None else args)
        for n, arg in enumerate(given, 1):
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError:
                shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
                fail(f"argument {n} is not valid UTF-8: {escape(shown)}", 2)
        try:
            code = super().main(given, *rest, **{**kwargs, "standalone_mode": False})
        except click.exceptions.NoArgsIsHelpError as exc:
            err.print(exc.format_message(), markup=False, highlight=False)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "waypost"
            fail(f"{escape(exc.format_message().rstrip('.'))} (see `{where} --help`)",
                 exc.exit_code)
        except click.ClickException as exc:
            fail(escape(exc.format_message()), exc.exit_code)
        except click.Abort:
            fail("aborted", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _set_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """`--db` after a subcommand wins over the one before it (and over WAYPOST_DB)."""
    if value is not None:
        ctx.ensure_object(dict)["db"] = value


def _db_everywhere(group: click.Group) -> None:
    """Every command takes `--db`, so it can be typed where a user types it."""
    for command in group.commands.values():
        command.params.append(click.Option(
            ["--db"], default=None, expose_value=False, callback=_set_db,
            help="Database URL (wins over --db before the command and WAYPOST_DB)."))
        if isinstance(command, click.Group):
            _db_everywhere(command)


def _engine(ctx: click.Context, create: bool = False) -> Any:
    """Only `start`, `emit` (and a worker) may create a database: any other command on a missing
    SQLite file is a mistyped path, refused before an empty file appears."""
    from .runtime.engine import Engine

    return Engine(ctx.obj["db"], create=create)


@click.group(cls=_Group)
@click.option("--db", envvar="WAYPOST_DB", default=DEFAULT_URL, show_default=True,
              help="Database URL (or WAYPOST_DB): sqlite:///file.db or postgresql://...")
@click.version_option(package_name="waypost")
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """waypost: durable workflows that survive crashes."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


@main.command()
@click.argument("module")
@click.option("--concurrency", "-c", default=8, show_default=True, type=click.IntRange(1, 1024),
              help="Attempts run at once.")
@click.option("--lease", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a claim lasts without a heartbeat.")
@click.option("--poll", default=0.25, show_default=True, type=click.FloatRange(0.001),
              help="Longest pause between looks for work when idle.")
@click.option("--grace", default=10.0, show_default=True, type=click.FloatRange(0),
              help="Seconds to let running attempts finish on shutdown.")
@click.option("--name", default=None, help="Worker id (default host:pid:random).")
@click.option("--log-attempts", is_flag=True,
              help="Log a JSON line for every attempt's start and end (logger waypost.attempts).")
@click.option("--metrics-port", default=None, type=click.IntRange(1, 65535),
              help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT/metrics.")
@click.option("--otel", is_flag=True,
              help="An OpenTelemetry span per attempt (pip install 'waypost[otel]'; the "
                   "exporter is OpenTelemetry's own configuration's).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="What the worker logs to stderr.")
@click.pass_context
def worker(ctx: click.Context, module: str, concurrency: int, lease: float, poll: float,
           grace: float, name: str | None, log_attempts: bool, metrics_port: int | None,
           otel: bool, log_level: str) -> None:
    """Serve the tasks of MODULE until SIGINT or SIGTERM."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .runtime.process.telemetry import ATTEMPTS, TELEMETRY, metrics_sink, otel_sink

    if not log_attempts:
        ATTEMPTS.setLevel(logging.WARNING)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        TELEMETRY.add_sink(metrics_sink)
        start_http_server(metrics_port, addr="127.0.0.1")
    if otel:
        try:
            import opentelemetry.trace  # noqa: F401
        except ImportError:
            fail("--otel needs OpenTelemetry: pip install 'waypost[otel]'", 2)
        TELEMETRY.add_sink(otel_sink)
    from .runtime.process.loader import import_module
    from .runtime.process.worker import Worker
    from .vocabulary.task import registered_tasks

    import_module(module)
    if not registered_tasks():
        fail(f"module {module} defines no task", 2)
    w = Worker(ctx.obj["db"], concurrency=concurrency, lease=lease, poll=poll, name=name)

    presses = itertools.count()

    def on_signal(signum: int, _frame: Any) -> None:
        # A second signal can interrupt this handler itself: count first (one C call), act,
        # then print, so the second one is never taken for the first.
        name = signal.Signals(signum).name
        if next(presses):  # the second Ctrl-C: give back what runs, and go
            w.force_stop(f"{name} twice")
            err.print(f"{name} again: giving back running attempts and exiting now")
            return
        w.request_stop(grace, name)
        err.print(f"{name}: finishing running attempts (up to {grace:g}s)")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    w.serve(on_ready=lambda: err.print(
        f"worker {w.id} serving {len(w.tasks)} tasks from {module} (concurrency {concurrency})"))
    s = w.stats
    err.print(f"worker {w.id} stopped: {s.succeeded} succeeded, {s.failed} failed, "
              f"{s.rejected} discarded")
    stuck = [t for t in threading.enumerate() if t.name.startswith("waypost-task") and t.is_alive()]
    if stuck:  # a task body that never returns must not keep a stopped worker alive
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _parse_json(text: str, option: str) -> Any:
    try:
        value = json.loads(text)
    except RecursionError:
        raise InputError(f"{option} is nested too deeply to decode (at most "
                         f"{codec.MAX_DEPTH} levels are accepted)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{option} is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from None
    try:
        codec.dumps(value, codec.MAX_DEPTH)
    except TypeError as exc:
        raise InputError(f"{option}: {exc}") from None
    return value


@main.command()
@click.argument("target", metavar="MODULE:FLOW")
@click.option("--input", "input_", default="{}", show_default=True,
              help="The flow's parameters as a JSON object.")
@click.option("--key", default=None, help="Idempotency key: starting twice gives one run.")
@click.pass_context
def start(ctx: click.Context, target: str, input_: str, key: str | None) -> None:
    """Start a run of FLOW and print its id."""
    from .design.check import check
    from .runtime.process.loader import load_flow

    data = _parse_json(input_, "--input")
    flow = load_flow(target)
    flow.bind_input(data)  # bad input is refused before the database is touched
    findings = check(flow)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        fail(f"{errors[0].line()} (waypost check {target.rpartition(':')[0]} lists all "
             f"{len(errors)} errors); nothing was started", 2)
    engine = _engine(ctx, create=True)
    click.echo(engine.start(flow, data, key=key))
    for finding in findings:  # once the run exists: a refused start says one thing only
        err.print(f"[yellow]warning:[/] {escape(finding.line().removeprefix('warning: '))}",
                  markup=True, highlight=False)
    unserved = engine.unserved_tasks(flow)
    if unserved:  # the run would wait in silence: say so where the user is looking
        names = ", ".join(unserved[:3]) + (f" and {len(unserved) - 3} more"
                                           if len(unserved) > 3 else "")
        err.print(f"[yellow]warning:[/] no live worker serves {escape(names)}: the run waits "
                  f"until a worker that imports {escape(target.rpartition(':')[0])} serves "
                  "them", markup=True, highlight=False)


@main.command("check")
@click.argument("module")
@click.pass_context
def check_cmd(ctx: click.Context, module: str) -> None:
    """Validate every flow and machine of MODULE without running anything; exit 1 on
    errors."""
    from .design.check import check, definitions
    from .runtime.process.loader import import_module

    found = definitions(import_module(module))
    if not found:
        fail(f"module {module} defines no flow or machine", 2)
    findings = [f for d in found for f in check(d)]
    for finding in findings:
        style = "red" if finding.level == "error" else "yellow"
        level, _, rest = finding.line().partition(": ")
        out.print(f"[{style}]{level}[/]: {escape(rest)}", highlight=False)
    errors = sum(f.level == "error" for f in findings)
    out.print(f"{len(found)} definitions checked: {errors} errors, "
              f"{len(findings) - errors} warnings", highlight=False)
    if errors:
        ctx.exit(1)


@main.command()
@click.argument("target", metavar="MODULE:NAME")
def graph(target: str) -> None:
    """Print a flow (flowchart) or a machine (stateDiagram-v2) as Mermaid."""
    from .design.mermaid import mermaid
    from .runtime.process.loader import load_flow

    click.echo(mermaid(load_flow(target)), nl=False)


@main.command()
@click.option("--status", default=None, type=click.Choice(RUN_STATUSES),
              help="Only runs with this status.")
@click.option("--flow", default=None, help="Only runs of this flow (name or MODULE:FLOW).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def runs(ctx: click.Context, status: str | None, flow: str | None, limit: int,
         as_json: bool) -> None:
    """A table of runs, newest first."""
    rows = _engine(ctx).runs(status=status, flow=flow, limit=limit)
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(box=None)
    table.add_column("run", no_wrap=True, min_width=24)
    table.add_column("flow", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("steps", no_wrap=True, justify="right")
    table.add_column("key", overflow="fold")
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("duration", no_wrap=True, justify="right")
    for r in rows:
        style = STATUS_STYLE.get(r["status"], "")
        status = f"[{style}]{r['status']}[/]"
        if r["steps_suspicious"]:
            status += f" [red]({r['steps_suspicious']} suspicious)[/]"
        table.add_row(r["id"], escape(r["flow"]), status,
                      f"{r['steps_succeeded']}/{r['steps_total']}", escape(r["key"] or ""),
                      (r["created_at"] or "")[:19].replace("T", " "), _secs(r["duration"]))
    out.print(table)


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}s"


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON object.")
@click.pass_context
def show(ctx: click.Context, run: str, as_json: bool) -> None:
    """Every step of RUN: status, attempts, times, input, key, output or error."""
    engine = _engine(ctx)
    view = engine.show(engine.resolve(run))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    style = STATUS_STYLE.get(view["status"], "")
    out.print(f"[bold]run[/] {view['id']}  [bold]flow[/] {escape(view['flow'])}  "
              f"[bold]status[/] [{style}]{view['status']}[/]  "
              f"[bold]key[/] {escape(view['key'] or '-')}")
    out.print(f"input {_short(view['input'], 200)}  ({view['input_checksum']})", markup=False)
    if view["status"] == "succeeded":
        out.print(f"output {_short(view['output'], 200)}", markup=False)
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
              f"[bold]data[/] {escape(_short(view['data'], 160))}")
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
        times += f" ({_secs(s['duration'])})" if s["duration"] is not None else ""
    attempts = f"{s['attempts']}/{s['max_attempts']} attempts"
    flag = "  [bold red]suspicious: missed 2 heartbeats[/]" if s["suspicious"] else ""
    out.print(f"\n[bold]{escape(s['name'])}[/]  [{style}]{s['status']}[/]  {attempts}{times}"
              f"{flag}")
    rows = [("input", f"{_short(s['input'], 120)}  {s['input_checksum']}"
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
        rows.append(("output", _short(s["output"], 160)))
    if s["ready_at"]:
        rows.append(("ready at", s["ready_at"]))
    if s["waiting"]:
        rows.append(("waiting", s["waiting"]))
    if s["heartbeat_at"] and s["status"] == "running":
        rows.append(("beat", f"{s['heartbeat_at'][11:23]} {_short(s['heartbeat_details'], 80)}"))
    if s["status"] == "running" and s["worker"]:
        rows.append(("worker", s["worker"]))
    for label, value in rows:
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


@main.command()
@click.argument("run")
@click.pass_context
def resume(ctx: click.Context, run: str) -> None:
    """Continue a failed RUN from its failed steps; succeeded steps are kept."""
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    reset = engine.resume(run_id)
    click.echo(f"run {run_id} resumed: {reset} steps will run again")


@main.command()
@click.argument("run")
@click.option("--reason", default="cancelled by an operator", show_default=True,
              help="Recorded as the run's error.")
@click.pass_context
def cancel(ctx: click.Context, run: str, reason: str) -> None:
    """Cancel an unfinished RUN: running attempts are cancelled, nothing else starts."""
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    ended = engine.cancel(run_id, reason)
    click.echo(f"run {run_id} cancelled: {ended} unfinished steps ended")


@main.command()
@click.argument("token")
@click.option("--output", default="null", show_default=True,
              help="The step's output as JSON.")
@click.pass_context
def complete(ctx: click.Context, token: str, output: str) -> None:
    """Complete a step that waits for another system, with its completion TOKEN."""
    run_id = _engine(ctx).complete(token, _parse_json(output, "--output"))
    click.echo(f"completed; run {run_id} continues")


@main.command()
@click.argument("run")
@click.argument("event")
@click.option("--payload", default="null", show_default=True, help="The event's payload as JSON.")
@click.option("--id", "event_id", default=None,
              help="An event id: sending the same id again stores nothing new.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@click.pass_context
def send(ctx: click.Context, run: str, event: str, payload: str, event_id: str | None,
         as_json: bool) -> None:
    """Send EVENT to a state machine RUN (its id, a prefix of it, or its key)."""
    sent = _engine(ctx).send(run, event, _parse_json(payload, "--payload"), id=event_id)
    if as_json:
        click.echo(json.dumps(sent))
        return
    what = {"consumed": f"taken by state {sent['state']}",
            "pending": "pending: it waits for the running action, or for a worker to decide",
            "deferred": f"deferred by state {sent['state']} until the next state",
            "ignored": f"ignored by state {sent['state']}",
            "unhandled": f"unhandled: state {sent['state']} has no transition for it"}
    again = " (sent before: nothing new stored)" if sent["duplicate"] else ""
    click.echo(f"event {sent['event']} for run {sent['run_id']}: "
               f"{what.get(sent['status'], sent['status'])}{again}")


@main.command()
@click.argument("topic")
@click.option("--payload", default="null", show_default=True, help="The event's payload as JSON.")
@click.option("--key", default=None, help="Events with one key reach each handler in order.")
@click.option("--id", "event_id", default=None,
              help="An event id: emitting the same id again stores nothing new.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@click.pass_context
def emit(ctx: click.Context, topic: str, payload: str, key: str | None, event_id: str | None,
         as_json: bool) -> None:
    """Publish an event on TOPIC: stored, with its deliveries started, before this returns."""
    # A producer may come before any worker: like `start`, it may create the store.
    sent = _engine(ctx, create=True).emit(topic, _parse_json(payload, "--payload"), key=key,
                                          id=event_id)
    if as_json:
        click.echo(json.dumps(sent))
    elif sent["duplicate"]:
        click.echo(f"event {sent['id']} on {topic}: emitted before, nothing new stored")
    else:
        click.echo(f"event {sent['id']} on {topic}: stored, {sent['deliveries']} deliveries "
                   f"started (trace it: waypost trace {sent['id']})")


@main.command()
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the tree as one JSON object.")
@click.pass_context
def trace(ctx: click.Context, ident: str, as_json: bool) -> None:
    """Everything an event id, a run id or a correlation id set in motion: events,
    deliveries, runs and child runs, with their statuses and durations, then one line:
    complete, in progress (and what is pending), or failed (what and where)."""
    found = _engine(ctx).trace(ident)
    if as_json:
        click.echo(json.dumps(found))
        return
    out.print(f"correlation {escape(found['correlation_id'])}", markup=False)
    for root in found["roots"]:
        _print_trace(root, 1)
    style = {"complete": "green", "failed": "red"}.get(found["status"], "yellow")
    out.print(f"[{style}]{escape(found['summary'])}[/]")


def _print_trace(node: dict[str, Any], depth: int) -> None:
    pad = "  " * depth
    if node["type"] == "event":
        key = f" key={node['key']}" if node["key"] else ""
        by = f" (emitted by step {node['emitted_by']['step']})" if node["emitted_by"] else ""
        line = f"{pad}event {node['topic']} {node['id']}{key}{by}"
        out.print(escape(line))
    elif node["type"] == "delivery":
        out.print(escape(f"{pad}delivery to {node['definition']}: queued, waiting for "
                         f"{node['waiting_for']}"), style="dim")
    else:
        took = f" {_secs(node['duration'])}" if node["duration"] is not None else ""
        error = node.get("error") or {}
        why = f": {error.get('type')}: {error.get('message')}" if error.get("type") else ""
        where = f" at step {error['step']}" if error.get("step") else ""
        line = f"{pad}run {node['id']} {node['definition']} {node['status']}{took}{where}{why}"
        out.print(escape(line), style=STATUS_STYLE.get(node["status"], ""))
    for child in node.get("children", []):
        _print_trace(child, depth + 1)


def _since(text: str) -> float:
    """An aware ISO 8601 time, or a duration ago (`90s`, `15m`, `2h`, `3d`)."""
    ago = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if ago:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[ago.group(2)]
        return time.time() - float(ago.group(1)) * unit
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InputError(f"--since takes an ISO 8601 time with its offset "
                         f"(2026-12-01T09:00+01:00) or a duration ago (15m, 2h), not {text!r}")
    return moment.timestamp()


@main.command("replay-topic")
@click.argument("handler")
@click.option("--since", "since", required=True,
              help="From when: an ISO 8601 time with its offset, or a duration ago (2h).")
@click.pass_context
def replay_topic(ctx: click.Context, handler: str, since: str) -> None:
    """Deliver to HANDLER (its name, MODULE:FUNCTION) the events from --since it has not
    had, in order, before new ones."""
    count = _engine(ctx).replay_topic(handler, _since(since))
    click.echo(f"replaying to {handler}: {count} events stored since then are checked "
               "against its pattern; workers deliver them in order")


def _by() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


_BY = click.option("--by", default=None, help="Who decides (default: your login name).")


@main.command()
@click.argument("run")
@click.argument("gate")
@_BY
@click.pass_context
def approve(ctx: click.Context, run: str, gate: str, by: str | None) -> None:
    """Let RUN past its waiting GATE; who and when is recorded."""
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    engine.approve(run_id, gate, by=by or _by())
    click.echo(f"gate {gate} of run {run_id} approved")


@main.command()
@click.argument("run")
@click.argument("gate")
@click.option("--reason", required=True, help="Why; recorded as the gate's error.")
@_BY
@click.pass_context
def reject(ctx: click.Context, run: str, gate: str, reason: str, by: str | None) -> None:
    """Reject RUN's waiting GATE: nothing after it runs, the run fails (and compensates)."""
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    engine.reject(run_id, gate, reason, by=by or _by())
    click.echo(f"gate {gate} of run {run_id} rejected")


@main.command()
@click.argument("run")
@click.argument("step")
@_BY
@click.pass_context
def retry(ctx: click.Context, run: str, step: str, by: str | None) -> None:
    """Try STEP of RUN again: a step that needs attention or a failed compensation."""
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    engine.retry_step(run_id, step, by=by or _by())
    click.echo(f"step {step} of run {run_id} will run again")


@main.command()
@click.argument("run")
@click.argument("step")
@click.option("--output", default="null", show_default=True,
              help="What the step is taken to have returned, as JSON.")
@_BY
@click.pass_context
def skip(ctx: click.Context, run: str, step: str, output: str, by: str | None) -> None:
    """Treat STEP of RUN as succeeded with --output; what follows it goes on."""
    value = _parse_json(output, "--output")
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    engine.skip_step(run_id, step, value, by=by or _by())
    click.echo(f"step {step} of run {run_id} skipped")


@main.command(name="fail")
@click.argument("run")
@click.argument("step")
@_BY
@click.pass_context
def fail_step(ctx: click.Context, run: str, step: str, by: str | None) -> None:
    """Fail STEP of RUN for good: it becomes a dead letter and the run fails."""
    engine = _engine(ctx)
    run_id = engine.resolve(run)
    engine.fail_step(run_id, step, by=by or _by())
    click.echo(f"step {step} of run {run_id} failed")


@main.group()
def dlq() -> None:
    """Dead letters: steps that ran out of attempts, kept for a replay."""


@dlq.command(name="list")
@click.option("--all", "show_all", is_flag=True,
              help="Include letters already replayed and closed ones (never replayable).")
@click.option("--run", default=None, help="Only this run's letters.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def dlq_list(ctx: click.Context, show_all: bool, run: str | None, limit: int,
             as_json: bool) -> None:
    """Dead letters, newest first."""
    engine = _engine(ctx)
    run_id = engine.resolve(run) if run is not None else None
    letters = engine.dead_letters(None if show_all else "dead", run_id, limit)
    if as_json:
        for letter in letters:
            click.echo(json.dumps(letter))
        return
    table = Table(box=None)
    for column in ("id", "run", "step", "status", "attempts", "error", "died (UTC)"):
        table.add_column(column, overflow="fold")
    for d in letters:
        e = d["error"] or {}
        table.add_row(str(d["id"]), d["run_id"], escape(d["step"]), d["status"],
                      str(d["attempts"]), escape(_short(f"{e.get('type')}: {e.get('message')}",
                                                        60)),
                      (d["created_at"] or "")[:19].replace("T", " "))
    out.print(table)


@dlq.command(name="show")
@click.argument("letter", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the letter as one JSON object.")
@click.pass_context
def dlq_show(ctx: click.Context, letter: int, as_json: bool) -> None:
    """One dead letter: its input and every attempt's error and traceback."""
    d = _engine(ctx).dead_letter(letter)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    out.print(f"dead letter {d['id']}  run {d['run_id']}  step {d['step']}  {d['status']}",
              markup=False)
    out.print(f"task     {d['task']}\ninput    {json.dumps(d['input'])}", markup=False)
    if d["replay_input"] is not None:
        out.print(f"replayed with input {json.dumps(d['replay_input'])}", markup=False)
    for attempt in d["history"]:
        e = attempt["error"] or {}
        label = f"attempt {attempt['attempt']}" if attempt["attempt"] else "decision"
        out.print(f"\n{label} {attempt['outcome']} ({attempt['worker'] or '-'}): "
                  f"{e.get('type')}: {e.get('message')}", markup=False)
        if e.get("traceback"):
            out.print("  " + e["traceback"].rstrip().replace("\n", "\n  "), markup=False)


@dlq.command(name="replay")
@click.argument("letter", type=int)
@click.option("--input", "input_", default=None,
              help='A patched input, as `dlq show` prints it: {"args": [...], "kwargs": {...}}.')
@_BY
@click.pass_context
def dlq_replay(ctx: click.Context, letter: int, input_: str | None, by: str | None) -> None:
    """Run a dead letter's step again; its run continues from there."""
    patched = None if input_ is None else _parse_json(input_, "--input")
    run_id = _engine(ctx).replay(letter, patched, by=by or _by())
    click.echo(f"dead letter {letter} replayed; run {run_id} continues")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def limits(ctx: click.Context, as_json: bool) -> None:
    """Every limit: its rate and concurrency, attempts running under it now, and the
    attempts started in its current rate window."""
    rows = _engine(ctx).limits()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(box=None)
    for column in ("limit", "rate", "concurrency", "running", "in window", "full"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(escape(r["name"]), escape(r["rate"] or "-"),
                      str(r["concurrency"] or "-"), str(r["in_use"]),
                      "-" if r["granted"] is None else f"{r['granted']} of {r['rate']}",
                      f"[red]{escape(', '.join(r['full']))}[/]" if r["full"] else "")
    out.print(table)


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """Scheduled flows with their next fire; `schedules pause NAME` stops one firing and
    `schedules resume NAME` starts it again (a worker stores its code's schedules when it
    starts)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _engine(ctx).schedules()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(box=None)
    for column in ("schedule", "when", "missed", "next fire", "last fire (UTC)", "last run"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(escape(r["name"]), escape(r["when"] or "?"), r["missed"] or "-",
                      "[yellow]paused[/]" if r["paused"] else escape(r["next_fire_local"] or "-"),
                      (r["last_fire"] or "-")[:19].replace("T", " "), r["last_run"] or "-")
    out.print(table)


@schedules.command(name="pause")
@click.argument("name")
@click.pass_context
def schedules_pause(ctx: click.Context, name: str) -> None:
    """Stop schedule NAME (its full name, or the part after the module) from firing."""
    click.echo(f"schedule {_engine(ctx).pause_schedule(name)} paused")


@schedules.command(name="resume")
@click.argument("name")
@click.pass_context
def schedules_resume(ctx: click.Context, name: str) -> None:
    """Fire schedule NAME again from its next due time (nothing that fell due while it
    was paused)."""
    click.echo(f"schedule {_engine(ctx).resume_schedule(name)} resumed")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """The live workers: id, incarnation, host, pid, heartbeat age and the tasks they serve."""
    rows = _engine(ctx).workers()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(box=None)
    for column in ("worker", "incarnation", "host", "pid", "heartbeat", "tasks"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(escape(r["id"]), escape((r["incarnation"] or "-")[:12]), escape(r["host"]),
                      str(r["pid"]), f"{r['heartbeat_age']:.1f}s ago",
                      escape(f"{len(r['tasks'])}: {', '.join(r['tasks'])}"))
    out.print(table)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (another than 127.0.0.1 exposes the API).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--app", "modules", multiple=True, metavar="MODULE",
              help="Import MODULE: its flows and machines can then be started by name "
                   "(repeatable). Nothing else can.")
@click.option("--no-auth", is_flag=True,
              help="Serve without a token: anyone who can reach the port can act.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, modules: tuple[str, ...],
          no_auth: bool) -> None:
    """The HTTP API (JSON, OpenAPI at /api/v1/openapi.json) over the store. Every route
    needs a bearer token (WAYPOST_API_TOKEN, or one generated and printed at first start)
    but /healthz."""
    import uvicorn

    from .api import create_app
    from .api.auth import from_env, stored_or_new
    from .runtime.process.loader import import_module

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for module in modules:
        import_module(module)
    engine = _engine(ctx, create=True)
    tokens: dict[str, str] | None = None
    if no_auth:
        err.print("[bold yellow]warning:[/] serving without auth: anyone who can reach "
                  f"{host}:{port} can start, cancel, approve and replay")
    elif os.environ.get("WAYPOST_API_TOKEN"):
        tokens = from_env(os.environ["WAYPOST_API_TOKEN"])
    else:
        tokens, new = stored_or_new(engine._store())
        if new is not None:
            err.print(f"API token (shown once; its digest is stored): {new}", markup=False)
        else:
            err.print("using the API token generated at first start (set WAYPOST_API_TOKEN "
                      "to use your own)")
    err.print(f"serving the API on http://{host}:{port}/api/v1 (docs at /api/v1/docs)",
              markup=False)
    uvicorn.run(create_app(engine, tokens), host=host, port=port, log_level="warning")


@main.command()
@click.option("--keep", is_flag=True, help="Keep the demo's database and print its path.")
def demo(keep: bool) -> None:
    """Run an example, kill its worker with SIGKILL part-way, restart it, and watch the
    run finish without redoing finished steps."""
    from .demo import run_demo

    sys.exit(run_demo(out, keep=keep))


_db_everywhere(main)

if __name__ == "__main__":
    main()
