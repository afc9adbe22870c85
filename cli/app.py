"""Entry point of the `dbt2prefect` console script: registers each command group's module."""

from __future__ import annotations

import atexit
import gc
import importlib
from typing import Annotated

import typer

from cli.common import HelpGroup
from dbt2prefect import __version__

app = typer.Typer(
    name="dbt2prefect",
    help="Move a dbt project from dbt Cloud to dbt Core on Prefect: export, plan, apply, run, parity, cutover.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Click's own help layout: the same option lines as docs/cli.md, choices as [a|b], no type column for flags.
    rich_markup_mode=None,
    cls=HelpGroup,  # commands in workflow order, summaries wrapped rather than cut
)

# Each module defines `register(app)`. Keep this list sorted; one line per command module.
COMMAND_MODULES: list[str] = [
    "cli.artifacts_cmd",
    "cli.cutover_cmd",
    "cli.demo_cmd",
    "cli.doctor_cmd",
    "cli.export_cmd",
    "cli.parity_cmd",
    "cli.plan_cmd",
    "cli.run_cmd",
    "cli.sandbox_cmd",
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dbt2prefect {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Move a dbt project from dbt Cloud to dbt Core on Prefect: export, plan, apply, run, parity, cutover."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    # The process ends with the command, so the interpreter's last garbage collection over everything dbt and Prefect
    # loaded is wasted work (about 0.7 s after a build). Exit handlers run last-registered first: this one runs after
    # Prefect's, which send the remaining logs and events.
    atexit.register(gc.freeze)
    app()
