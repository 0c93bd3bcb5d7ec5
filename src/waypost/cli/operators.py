"""What a person decides for a run that waits on one: gates to pass or refuse, steps to try
again, skip or give up on, and dead letters to look into and replay. Each decision records
who made it (`--by`)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.markup import escape

from .common import BY, decider, on_run, open_engine, out, parse_json, print_rows, short, utc_time


@click.command()
@click.argument("run")
@click.argument("gate")
@BY
@click.pass_context
def approve(ctx: click.Context, run: str, gate: str, by: str | None) -> None:
    """Let RUN past its waiting GATE; who and when is recorded."""
    run_id, _ = on_run(ctx, run, lambda engine, run_id: engine.approve(
        run_id, gate, by=decider(by)))
    click.echo(f"gate {gate} of run {run_id} approved")


@click.command()
@click.argument("run")
@click.argument("gate")
@click.option("--reason", required=True, help="Why; recorded as the gate's error.")
@BY
@click.pass_context
def reject(ctx: click.Context, run: str, gate: str, reason: str, by: str | None) -> None:
    """Reject RUN's waiting GATE: nothing after it runs, the run fails (and compensates)."""
    run_id, _ = on_run(ctx, run, lambda engine, run_id: engine.reject(
        run_id, gate, reason, by=decider(by)))
    click.echo(f"gate {gate} of run {run_id} rejected")


@click.command()
@click.argument("run")
@click.argument("step")
@BY
@click.pass_context
def retry(ctx: click.Context, run: str, step: str, by: str | None) -> None:
    """Try STEP of RUN again: a step that needs attention or a failed compensation."""
    run_id, _ = on_run(ctx, run, lambda engine, run_id: engine.retry_step(
        run_id, step, by=decider(by)))
    click.echo(f"step {step} of run {run_id} will run again")


@click.command()
@click.argument("run")
@click.argument("step")
@click.option("--output", default="null", show_default=True,
              help="What the step is taken to have returned, as JSON.")
@BY
@click.pass_context
def skip(ctx: click.Context, run: str, step: str, output: str, by: str | None) -> None:
    """Treat STEP of RUN as succeeded with --output; what follows it goes on."""
    value = parse_json(output, "--output")
    run_id, _ = on_run(ctx, run, lambda engine, run_id: engine.skip_step(
        run_id, step, value, by=decider(by)))
    click.echo(f"step {step} of run {run_id} skipped")


@click.command(name="fail")
@click.argument("run")
@click.argument("step")
@BY
@click.pass_context
def fail_step(ctx: click.Context, run: str, step: str, by: str | None) -> None:
    """Fail STEP of RUN for good: it becomes a dead letter and the run fails."""
    run_id, _ = on_run(ctx, run, lambda engine, run_id: engine.fail_step(
        run_id, step, by=decider(by)))
    click.echo(f"step {step} of run {run_id} failed")


@click.group()
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

    def cells(d: dict[str, Any]) -> list[str]:
        e = d["error"] or {}
        return [str(d["id"]), d["run_id"], escape(d["step"]), d["status"], str(d["attempts"]),
                escape(short(f"{e.get('type')}: {e.get('message')}", 60)),
                utc_time(d["created_at"])]

    _, letters = on_run(ctx, run, lambda engine, run_id: engine.dead_letters(
        None if show_all else "dead", run_id, limit))
    print_rows(letters, as_json,
               ("id", "run", "step", "status", "attempts", "error", "died (UTC)"), cells)


@dlq.command(name="show")
@click.argument("letter", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the letter as one JSON object.")
@click.pass_context
def dlq_show(ctx: click.Context, letter: int, as_json: bool) -> None:
    """One dead letter: its input and every attempt's error and traceback."""
    d = open_engine(ctx).dead_letter(letter)
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
@BY
@click.pass_context
def dlq_replay(ctx: click.Context, letter: int, input_: str | None, by: str | None) -> None:
    """Run a dead letter's step again; its run continues from there."""
    patched = None if input_ is None else parse_json(input_, "--input")
    run_id = open_engine(ctx).replay(letter, patched, by=decider(by))
    click.echo(f"dead letter {letter} replayed; run {run_id} continues")


COMMANDS = (approve, reject, retry, skip, fail_step, dlq)
