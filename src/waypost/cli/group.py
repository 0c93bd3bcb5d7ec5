"""The `waypost` group itself: how every command's errors reach the user, and `--db`."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from ..errors import WaypostError
from ..store import DEFAULT_URL
from .common import err, fail


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


def db_everywhere(group: click.Group) -> None:
    """Every command takes `--db`, so it can be typed where a user types it. Call it once all
    commands are added: it reaches only those already there."""
    for command in group.commands.values():
        command.params.append(click.Option(
            ["--db"], default=None, expose_value=False, callback=_set_db,
            help="Database URL (wins over --db before the command and WAYPOST_DB)."))
        if isinstance(command, click.Group):
            db_everywhere(command)


@click.group(cls=_Group)
@click.option("--db", envvar="WAYPOST_DB", default=DEFAULT_URL, show_default=True,
              help="Database URL (or WAYPOST_DB): sqlite:///file.db or postgresql://...")
@click.version_option(package_name="waypost")
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """waypost: durable workflows that survive crashes."""
    ctx.ensure_object(dict)
    ctx.obj["db"] = db
