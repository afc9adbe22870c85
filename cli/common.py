"""Options and error handling shared by every command."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from dbt2prefect.errors import Dbt2PrefectError
from dbt2prefect.escaping import csv_cell, markdown_cell
from dbt2prefect.tenant import TenantSettings, load_tenant

if TYPE_CHECKING:
    from app.workspace import Workspace

console = Console()
err_console = Console(stderr=True)

TenantFile = Annotated[
    Path | None,
    typer.Option(
        "--tenant-file",
        envvar="DBT2PREFECT_TENANT_FILE",
        help="Tenant settings TOML (default: tenants/dbt_williamgrant.toml).",
    ),
]
PARITY_DIR_ENV = "DBT2PREFECT_PARITY_DIR"
DEPRECATED_PARITY_DIR_ENV = "DBT2PREFECT_PARITY_REPORT_DIR"


def _parity_dir(value: str | None) -> str | None:
    """The old variable name still works, with a message, when neither the option nor the new name is given."""
    old = os.environ.get(DEPRECATED_PARITY_DIR_ENV)
    if value is None and old:
        err_console.print(
            f"[yellow]warning:[/] {DEPRECATED_PARITY_DIR_ENV} is deprecated; set {PARITY_DIR_ENV} instead.",
            highlight=False,
        )
        return old
    return value


ParityDir = Annotated[
    str | None,
    typer.Option(
        "--report-dir",
        envvar=PARITY_DIR_ENV,
        callback=_parity_dir,
        metavar="<folder or URL>",
        help="Parity report root, a folder or an fsspec URL (default: the tenant's parity_report_url, else "
        "<artifact_store_url>/<tenant>/parity).",
    ),
]
OutputFormat = Literal["table", "json", "markdown", "csv"]
FormatOption = Annotated[
    OutputFormat | None,
    typer.Option("--format", help="Output format (default: table; --json is the same as --format json)."),
]


def output_format(format_: OutputFormat | None, json_output: bool) -> OutputFormat:
    """The chosen format; --json and --format disagreeing is bad input."""
    if json_output and format_ not in (None, "json"):
        raise typer.BadParameter(f"--json and --format {format_} contradict each other; pass one of them")
    return "json" if json_output else (format_ or "table")


def render_rows(rows: Sequence[Mapping[str, object]], format_: Literal["markdown", "csv"]) -> str:
    """Rows (one mapping per row, same keys) as a Markdown table or CSV, for reports and spreadsheets.

    Every cell goes through the format's one escape function (`dbt2prefect.escaping`): no HTML in Markdown, no
    formula in CSV.
    """
    if not rows:
        return ""
    columns = list(rows[0])
    if format_ == "csv":
        buffer = io.StringIO()
        # RFC 4180 line ends: the writer then quotes a cell holding a CR too, so no cell can split a row.
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows({column: csv_cell(value) for column, value in row.items()} for row in rows)
        return buffer.getvalue()
    lines = ["| " + " | ".join(markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(markdown_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


WORKFLOW_ORDER = (
    "sandbox",
    "demo",
    "doctor",
    "export",
    "plan",
    "apply",
    "emit",
    "blocks",
    "run",
    "run-job",
    "parity",
    "cutover",
    "rollback",
    "status",
    "artifacts",
)
"""The order `--help` and docs/cli.md list the top-level commands in: the order of a migration."""


class HelpGroup(TyperGroup):
    """A command group whose `--help` lists commands in workflow order, each with its whole summary.

    Click cuts a command's summary to the terminal width with "..."; here the first paragraph of its help is
    wrapped instead, so nothing is cut at 80 columns. Names not in `WORKFLOW_ORDER` keep their registration order.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(WORKFLOW_ORDER)}
        return sorted(names, key=lambda name: (rank.get(name, len(rank)), names.index(name)))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command_summary(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def command_summary(command: Any) -> str:
    """A command's one-paragraph summary: its short help, else the first paragraph of its help, uncut."""
    text = command.short_help or (command.help or "").strip().split("\n\n", 1)[0]
    return " ".join(text.split())


JsonFlag = Annotated[bool, typer.Option("--json", help="Write machine-readable JSON to stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def tenant_from(path: Path | None) -> TenantSettings:
    """Load the tenant settings named on the command line (or the default tenant)."""
    return load_tenant(path)


def workspace_from(path: Path | None, **options: Any) -> Workspace:
    """The workspace of the tenant named on the command line (or the default tenant); `options` as
    `Workspace.open` takes them (e.g. `ledger_url`, `report_dir`)."""
    from app.workspace import Workspace

    return Workspace.open(path, **options)


def handle_errors(func: F) -> F:
    """Turn library errors into one clean message on stderr and the error's exit code (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Dbt2PrefectError as exc:
            # Escaped: messages quote user input and TOML tables such as [tenant.blocks], which are not markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Terminated:
            err_console.print("terminated (SIGTERM); what this command started is stopped")
            raise typer.Exit(143) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C is (see `terminate_as_interrupt`); a command it ends exits 143 (128 + 15)."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the block runs, so `with` blocks stop what they started.

    Python's default SIGTERM action ends the process at once: child processes (a Prefect server) would
    outlive a `sandbox up` stopped by a service manager or `kill`. The exception is `Terminated`, a
    KeyboardInterrupt, so that `handle_errors` exits 143 as a shell reports a process ended by SIGTERM.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_terminal() -> bool:
    return sys.stdout.isatty()
