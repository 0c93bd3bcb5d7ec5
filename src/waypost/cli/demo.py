"""`waypost demo`: the crash-and-resume promise, shown in one command on a throwaway database."""

from __future__ import annotations

import sys

import click

from .common import out


@click.command()
@click.option("--keep", is_flag=True, help="Keep the demo's database and print its path.")
def demo(keep: bool) -> None:
    """Run an example, kill its worker with SIGKILL part-way, restart it, and watch the
    run finish without redoing finished steps."""
    from ..demo import run_demo

    sys.exit(run_demo(out, keep=keep))


COMMANDS = (demo,)
