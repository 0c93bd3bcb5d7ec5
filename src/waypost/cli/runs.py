"""Runs from start to end: start one, list them, look into one, and resume or cancel it."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape
from rich.table import Column

from ..statuses import RUN_STATUSES
from .common import (
    STATUS_STYLE,
    err,
    fail,
    on_run,
    open_engine,
    parse_json,
    print_rows,
    secs,
    utc_time,
)
from .show import print_run


@click.command()
@click.argument("target", metavar="MODULE:FLOW")
@click.option("--input", "input_", default="{}", show_default=True,
              help="The flow's parameters as a JSON object.")
@click.option("--key", default=None, help="Idempotency key: starting twice gives one run.")
@click.pass_context
def start(ctx: click.Context, target: str, input_: str, key: str | None) -> None:
    """Start a run of FLOW and print its id."""
    from ..design.check import check
    from ..runtime.process.loader import load_flow

    data = parse_json(input_, "--input")
    flow = load_flow(target)
    flow.bind_input(data)  # bad input is refused before the database is touched
    findings = check(flow)
    errors = [f for f in findings if f.level == "error"]
    if errors:
        fail(f"{errors[0].line()} (waypost check {target.rpartition(':')[0]} lists all "
             f"{len(errors)} errors); nothing was started", 2)
    engine = open_engine(ctx, create=True)
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


@click.command()
@click.option("--status", default=None, type=click.Choice(RUN_STATUSES),
              help="Only runs with this status.")
@click.option("--definition", "--flow", "definition", default=None,
              help="Only runs of this definition (flow, machine or handler): its name or "
                   "MODULE:NAME. --flow is its older spelling.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def runs(ctx: click.Context, status: str | None, definition: str | None, limit: int,
         as_json: bool) -> None:
    """A table of runs, newest first."""

    def cells(r: dict[str, Any]) -> list[str]:
        style = STATUS_STYLE.get(r["status"], "")
        shown = f"[{style}]{r['status']}[/]"
        if r["steps_suspicious"]:
            shown += f" [red]({r['steps_suspicious']} suspicious)[/]"
        return [r["id"], escape(r["flow"]), shown, f"{r['steps_succeeded']}/{r['steps_total']}",
                escape(r["key"] or ""), utc_time(r["created_at"]), secs(r["duration"])]

    print_rows(open_engine(ctx).runs(status=status, definition=definition, limit=limit),
               as_json,
               [Column("run", no_wrap=True, min_width=24), "definition",
                Column("status", no_wrap=True),
                Column("steps", no_wrap=True, justify="right"), "key",
                Column("created (UTC)", no_wrap=True),
                Column("duration", no_wrap=True, justify="right")], cells)


@click.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the run as one JSON object.")
@click.pass_context
def show(ctx: click.Context, run: str, as_json: bool) -> None:
    """Every step of RUN: status, attempts, times, input, key, output or error."""
    _, view = on_run(ctx, run, lambda engine, run_id: engine.show(run_id))
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    print_run(view)


@click.command()
@click.argument("run")
@click.pass_context
def resume(ctx: click.Context, run: str) -> None:
    """Continue a failed RUN from its failed steps; succeeded steps are kept."""
    run_id, reset = on_run(ctx, run, lambda engine, run_id: engine.resume(run_id))
    click.echo(f"run {run_id} resumed: {reset} steps will run again")


@click.command()
@click.argument("run")
@click.option("--reason", default="cancelled by an operator", show_default=True,
              help="Recorded as the run's error.")
@click.pass_context
def cancel(ctx: click.Context, run: str, reason: str) -> None:
    """Cancel an unfinished RUN: running attempts are cancelled, nothing else starts."""
    run_id, ended = on_run(ctx, run, lambda engine, run_id: engine.cancel(run_id, reason))
    click.echo(f"run {run_id} cancelled: {ended} unfinished steps ended")


COMMANDS = (start, runs, show, resume, cancel)
