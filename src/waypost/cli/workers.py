"""The long-running processes of a deployment (a worker, the HTTP API) and what they hold
now: the live workers and the limits their attempts run under."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
from typing import Any

import click
from rich.markup import escape

from .common import err, fail, open_engine, print_rows

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@click.command()
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
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr, format=_LOG_FORMAT)
    from ..runtime.process.telemetry import ATTEMPTS, TELEMETRY, metrics_sink, otel_sink

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
    from ..runtime.process.loader import import_module
    from ..runtime.process.worker import Worker
    from ..vocabulary.task import registered_tasks

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


@click.command()
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

    from ..api import create_app
    from ..api.auth import from_env, stored_or_new
    from ..runtime.process.loader import import_module

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=_LOG_FORMAT)
    for module in modules:
        import_module(module)
    engine = open_engine(ctx, create=True)
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def workers(ctx: click.Context, as_json: bool) -> None:
    """The live workers: id, incarnation, host, pid, heartbeat age and the tasks they serve."""
    print_rows(open_engine(ctx).workers(), as_json,
               ("worker", "incarnation", "host", "pid", "heartbeat", "tasks"),
               lambda r: [escape(r["id"]), escape((r["incarnation"] or "-")[:12]),
                          escape(r["host"]), str(r["pid"]), f"{r['heartbeat_age']:.1f}s ago",
                          escape(f"{len(r['tasks'])}: {', '.join(r['tasks'])}")])


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
@click.pass_context
def limits(ctx: click.Context, as_json: bool) -> None:
    """Every limit: its rate and concurrency, attempts running under it now, and the
    attempts started in its current rate window."""
    print_rows(open_engine(ctx).limits(), as_json,
               ("limit", "rate", "concurrency", "running", "in window", "full"),
               lambda r: [escape(r["name"]), escape(r["rate"] or "-"),
                          str(r["concurrency"] or "-"), str(r["in_use"]),
                          "-" if r["granted"] is None else f"{r['granted']} of {r['rate']}",
                          f"[red]{escape(', '.join(r['full']))}[/]" if r["full"] else ""])


COMMANDS = (worker, serve, workers, limits)
