"""Looking at definitions without a database: check them for mistakes, or draw them."""

from __future__ import annotations

import click
from rich.markup import escape

from .common import fail, out


@click.command("check")
@click.argument("module")
@click.pass_context
def check_cmd(ctx: click.Context, module: str) -> None:
    """Validate every flow and machine of MODULE without running anything; exit 1 on
    errors."""
    from ..design.check import check, definitions
    from ..runtime.process.loader import import_module

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


@click.command()
@click.argument("target", metavar="MODULE:NAME")
def graph(target: str) -> None:
    """Print a flow (flowchart) or a machine (stateDiagram-v2) as Mermaid."""
    from ..design.mermaid import mermaid
    from ..runtime.process.loader import load_flow

    click.echo(mermaid(load_flow(target)), nl=False)


COMMANDS = (check_cmd, graph)
