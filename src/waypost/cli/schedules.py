"""Scheduled flows: what fires next, and stopping or restarting one without a deploy."""

from __future__ import annotations

import click
from rich.markup import escape

from .common import open_engine, print_rows, utc_time


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """Scheduled flows with their next fire; `schedules pause NAME` stops one firing and
    `schedules resume NAME` starts it again (a worker stores its code's schedules when it
    starts)."""
    if ctx.invoked_subcommand is not None:
        return
    print_rows(open_engine(ctx).schedules(), as_json,
               ("schedule", "when", "missed", "next fire", "last fire (UTC)", "last run"),
               lambda r: [escape(r["name"]), escape(r["when"] or "?"), r["missed"] or "-",
                          "[yellow]paused[/]" if r["paused"]
                          else escape(r["next_fire_local"] or "-"),
                          utc_time(r["last_fire"], "-"), r["last_run"] or "-"])


@schedules.command(name="pause")
@click.argument("name")
@click.pass_context
def schedules_pause(ctx: click.Context, name: str) -> None:
    """Stop schedule NAME (its full name, or the part after the module) from firing."""
    click.echo(f"schedule {open_engine(ctx).pause_schedule(name)} paused")


@schedules.command(name="resume")
@click.argument("name")
@click.pass_context
def schedules_resume(ctx: click.Context, name: str) -> None:
    """Fire schedule NAME again from its next due time (nothing that fell due while it
    was paused)."""
    click.echo(f"schedule {open_engine(ctx).resume_schedule(name)} resumed")


COMMANDS = (schedules,)
