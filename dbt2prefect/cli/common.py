"""Options and error handling shared by every command."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from dbt2prefect.errors import Dbt2PrefectError
from dbt2prefect.tenant import TenantSettings, load_tenant

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
JsonFlag = Annotated[bool, typer.Option("--json", help="Write machine-readable JSON to stdout.")]

F = TypeVar("F", bound=Callable[..., Any])


def tenant_from(path: Path | None) -> TenantSettings:
    """Load the tenant settings named on the command line (or the default tenant)."""
    return load_tenant(path)


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
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while the block runs, so `with` blocks stop what they started.

    Python's default SIGTERM action ends the process at once: child processes (a Prefect server) would
    outlive a `sandbox up` stopped by a service manager or `kill`.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_terminal() -> bool:
    return sys.stdout.isatty()
