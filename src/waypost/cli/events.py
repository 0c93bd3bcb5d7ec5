"""What comes in from outside (an event on a topic, an event for a machine, a completion by
another system) and the tree of what it set in motion."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import click
from rich.markup import escape

from ..errors import InputError
from .common import STATUS_STYLE, open_engine, out, parse_json, secs


@click.command()
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
    sent = open_engine(ctx, create=True).emit(topic, parse_json(payload, "--payload"), key=key,
                                              id=event_id)
    if as_json:
        click.echo(json.dumps(sent))
    elif sent["duplicate"]:
        click.echo(f"event {sent['id']} on {topic}: emitted before, nothing new stored")
    else:
        click.echo(f"event {sent['id']} on {topic}: stored, {sent['deliveries']} deliveries "
                   f"started (trace it: waypost trace {sent['id']})")


@click.command()
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
    # Not on_run: the engine resolves the target itself, since a machine may be named by its key.
    sent = open_engine(ctx).send(run, event, parse_json(payload, "--payload"), id=event_id)
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


@click.command()
@click.argument("token")
@click.option("--output", default="null", show_default=True,
              help="The step's output as JSON.")
@click.pass_context
def complete(ctx: click.Context, token: str, output: str) -> None:
    """Complete a step that waits for another system, with its completion TOKEN."""
    run_id = open_engine(ctx).complete(token, parse_json(output, "--output"))
    click.echo(f"completed; run {run_id} continues")


@click.command()
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the tree as one JSON object.")
@click.pass_context
def trace(ctx: click.Context, ident: str, as_json: bool) -> None:
    """Everything an event id, a run id or a correlation id set in motion: events,
    deliveries, runs and child runs, with their statuses and durations, then one line:
    complete, in progress (and what is pending), or failed (what and where)."""
    found = open_engine(ctx).trace(ident)
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
        took = f" {secs(node['duration'])}" if node["duration"] is not None else ""
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


@click.command("replay-topic")
@click.argument("handler")
@click.option("--since", "since", required=True,
              help="From when: an ISO 8601 time with its offset, or a duration ago (2h).")
@click.pass_context
def replay_topic(ctx: click.Context, handler: str, since: str) -> None:
    """Deliver to HANDLER (its name, MODULE:FUNCTION) the events from --since it has not
    had, in order, before new ones."""
    count = open_engine(ctx).replay_topic(handler, _since(since))
    click.echo(f"replaying to {handler}: {count} events stored since then are checked "
               "against its pattern; workers deliver them in order")


COMMANDS = (emit, send, complete, trace, replay_topic)
