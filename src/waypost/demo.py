"""`waypost demo`: a run survives its worker being killed with SIGKILL.

The demo starts a real worker process, kills it part-way through a run, starts another,
and shows that steps finished before the kill are not run again (each task writes one
line per execution to a ledger, which the demo counts).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import waypost as wp

LEDGER_ENV = "WAYPOST_DEMO_LEDGER"


def _record(step: str, ctx: wp.Context) -> None:
    path = os.environ.get(LEDGER_ENV)
    if path:
        line = json.dumps({"step": ctx.step, "attempt": ctx.attempt, "pid": os.getpid(),
                           "key": ctx.idempotency_key}) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)


@wp.task(retries=2)
def list_orders(day: str, ctx: wp.Context) -> list[int]:
    time.sleep(0.3)
    _record("list_orders", ctx)
    return list(range(1, 13))


@wp.task(retries=2)
def price(order_id: int, ctx: wp.Context) -> int:
    time.sleep(0.35)
    _record("price", ctx)
    return 1000 + 37 * order_id


@wp.task(retries=2)
def total(amounts: list[int], ctx: wp.Context) -> int:
    time.sleep(0.3)
    _record("total", ctx)
    return sum(amounts)


@wp.task(retries=2)
def invoice(day: str, amount: int, ctx: wp.Context) -> str:
    time.sleep(0.3)
    _record("invoice", ctx)
    return f"invoice {day}: {amount / 100:.2f} EUR (key {ctx.idempotency_key[:8]})"


@wp.task(retries=2)
def publish(text: str, ctx: wp.Context) -> str:
    time.sleep(0.3)
    _record("publish", ctx)
    return f"published {text}"


@wp.flow()
def daily_invoices(day: str) -> str:
    amounts = price.map(list_orders(day))
    return publish(invoice(day, total(amounts)))


def _worker(url: str, ledger: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, LEDGER_ENV: str(ledger)}
    return subprocess.Popen(
        [sys.executable, "-m", "waypost.cli", "--db", url, "worker", "waypost.demo",
         "--concurrency", "4", "--lease", "5", "--poll", "0.05"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _counts(engine: wp.Engine, run_id: str) -> tuple[int, int, list[dict[str, Any]]]:
    steps = engine.show(run_id)["steps"]
    done = sum(s["status"] == "succeeded" for s in steps)
    # 12 map items are not rows until the order list exists; count them from the start.
    total_steps = max(len(steps), 17)
    return done, total_steps, steps


def run_demo(console: Console, keep: bool = False) -> int:
    folder = Path(tempfile.mkdtemp(prefix="waypost-demo-"))
    url = f"sqlite:///{folder / 'demo.db'}"
    ledger = folder / "ledger.jsonl"
    engine = wp.Engine(url)
    run_id = engine.start(daily_invoices, {"day": "2026-11-24"}, key="invoices-2026-11-24")
    console.print(f"[bold]waypost demo[/]: run {run_id} of daily_invoices on {url}")
    worker = _worker(url, ledger)
    console.print(f"started worker process {worker.pid}")
    done_before_kill: set[str] = set()
    killed = False
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      console=console, transient=False) as progress:
            bar = progress.add_task("steps succeeded", total=17)
            while engine.status(run_id) not in ("succeeded", "failed"):
                done, total_steps, steps = _counts(engine, run_id)
                progress.update(bar, completed=done, total=total_steps)
                if not killed and done >= 6:
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait()
                    killed = True
                    done_before_kill = {s["name"] for s in steps if s["status"] == "succeeded"}
                    running = [s["name"] for s in steps if s["status"] == "running"]
                    progress.console.print(
                        f"[bold red]kill -9[/] worker {worker.pid}: {len(done_before_kill)} "
                        f"steps done, {len(running)} interrupted ({', '.join(running) or '-'})")
                    time.sleep(0.5)
                    worker = _worker(url, ledger)
                    progress.console.print(f"started a new worker process {worker.pid}")
                time.sleep(0.05)
            done, total_steps, steps = _counts(engine, run_id)
            progress.update(bar, completed=done, total=total_steps)
        code = _report(console, engine, run_id, steps, ledger, done_before_kill)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        engine.close()
        if not keep:
            for p in folder.iterdir():
                p.unlink()
            folder.rmdir()
    # The last line is something to try next, so it names only what still exists.
    if keep:
        console.print(f"database kept; inspect the run with: waypost --db {url} show {run_id}",
                      markup=False, highlight=False)
    else:
        console.print("the demo's database was deleted; run `waypost demo --keep` to keep it "
                      "and inspect the run with `waypost show`", markup=False, highlight=False)
    return code


def _report(console: Console, engine: wp.Engine, run_id: str, steps: list[dict[str, Any]],
            ledger: Path, done_before_kill: set[str]) -> int:
    runs = Counter(json.loads(line)["step"] for line in ledger.read_text().splitlines())
    table = Table("step", "status", "attempts", "bodies finished", "note", box=None)
    redone = []
    for s in steps:
        n = runs.get(s["name"], 0)
        if s["name"] in done_before_kill:
            note = "finished before the kill"
            if n != 1:
                redone.append(s["name"])
        elif s["kind"] == "map":
            note = "gathers the outputs of its items"
        elif s["attempts"] > 1:
            note = "interrupted by the kill; ran again with the same idempotency key"
        else:
            note = "ran after the restart"
        table.add_row(s["name"], s["status"], str(s["attempts"]), str(n), note)
    console.print(table)
    view = engine.show(run_id)
    console.print(f"run {run_id}: [bold]{view['status']}[/] → {view['output']}")
    if view["status"] != "succeeded" or redone:
        console.print(f"[red]unexpected: re-executed {redone}[/]")
        return 1
    console.print(f"[green]{len(done_before_kill)} steps finished before the kill and none ran "
                  "again.[/]")
    return 0
