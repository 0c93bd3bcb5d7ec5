"""What every command shares: the consoles, opening the engine, resolving a run, reading JSON
options and printing rows, so that each command says only what it does."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, overload

import click
from rich.console import Console
from rich.table import Column, Table

from .. import codec
from ..errors import InputError

if TYPE_CHECKING:
    from ..runtime.engine import Engine

T = TypeVar("T")

# Piped output keeps every value on one line, so `waypost runs | grep KEY` works.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 100_000)
err = Console(stderr=True, highlight=False, soft_wrap=True)

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "ready": "cyan",
                "pending": "dim", "upstream_failed": "magenta", "cancelled": "magenta",
                "waiting": "blue", "needs_attention": "bold red", "compensating": "yellow",
                "compensated": "magenta", "compensation_failed": "bold red"}


def fail(message: str, code: int = 1) -> NoReturn:
    """Every refusal is one line on stderr and an exit code a script can test."""
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    sys.exit(code)


def open_engine(ctx: click.Context, create: bool = False) -> Engine:
    """Only `start`, `emit`, `serve` (and a worker) may create a database: any other command on
    a missing SQLite file is a mistyped path, refused before an empty file appears."""
    from ..runtime.engine import Engine

    return Engine(ctx.obj["db"], create=create)


@overload
def on_run(ctx: click.Context, run: str, call: Callable[[Engine, str], T]) -> tuple[str, T]: ...


@overload
def on_run(ctx: click.Context, run: str | None,
           call: Callable[[Engine, str | None], T]) -> tuple[str | None, T]: ...


def on_run(ctx: click.Context, run: str | None,
           call: Callable[[Engine, Any], T]) -> tuple[str | None, T]:
    """A user names a run by its id or a prefix of it; the engine acts on its full id, which
    is what the command then reports. No run given (an optional filter) stays None.

    An unknown or ambiguous run raises, and the group turns that into its one-line error."""
    engine = open_engine(ctx)
    run_id = None if run is None else engine.resolve(run)
    return run_id, call(engine, run_id)


def parse_json(text: str, option: str) -> Any:
    """Refuse what the store could not keep, naming the option, before anything is written."""
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


BY = click.option("--by", default=None, help="Who decides (default: your login name).")


def decider(by: str | None) -> str | None:
    """A decision is recorded with who made it; the login name serves when `--by` is not
    given, and nobody when even that cannot be read."""
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def print_rows(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str | Column],
               cells: Callable[[dict[str, Any]], Sequence[str]]) -> None:
    """Scripts read JSON lines; people read a table. A column named by its header alone folds
    long values rather than cutting them."""
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    table = Table(*(Column(c, overflow="fold") if isinstance(c, str) else c for c in columns),
                  box=None)
    for row in rows:
        table.add_row(*cells(row))
    out.print(table)


def secs(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}s"


def short(value: Any, width: int = 40) -> str:
    """One value on one line of a table or a step, cut with an ellipsis past `width`."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def utc_time(stamp: str | None, missing: str = "") -> str:
    """An ISO time to the second, as tables show it."""
    return (stamp or missing)[:19].replace("T", " ")
