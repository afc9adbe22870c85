"""`dbt2prefect sandbox up`: the sandbox dbt Cloud API and a real Prefect server on loopback, until Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from cli.common import HelpGroup, TenantFile, console, handle_errors, terminate_as_interrupt
from dbt2prefect.errors import ExternalServiceError
from dbt2prefect.escaping import shell_word

if TYPE_CHECKING:
    from sandbox.stack import SandboxStack


def register(app: typer.Typer) -> None:
    sandbox = typer.Typer(
        help="The local sandbox: dbt Cloud API stand-in and Prefect server.", no_args_is_help=True, cls=HelpGroup
    )
    sandbox.command("up")(up)
    app.add_typer(sandbox, name="sandbox")


Workdir = Annotated[
    Path | None,
    typer.Option("--workdir", help="Work folder for all sandbox state (default: .dbt2prefect/sandbox)."),
]


@handle_errors
def up(
    workdir: Workdir = None,
    prefect_port: Annotated[int, typer.Option(min=0, max=65535, help="Prefect server port (0: a free one).")] = 4200,
    dbt_cloud_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Sandbox dbt Cloud API port (0: a free one).")
    ] = 8580,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Empty the work folder first (data, runs, Prefect DB).")
    ] = False,
    tenant_file: TenantFile = None,
) -> None:
    """Start the sandbox on 127.0.0.1 and keep it running until Ctrl-C.

    Raw data (if absent), the sandbox dbt Cloud API, `prefect server start` with its own PREFECT_HOME, the dev, prod and parity profile blocks, and a process worker that runs the deployment's runs; then it prints what to export in another shell.
    """
    from sandbox.stack import DEFAULT_ROOT, sandbox_stack

    # Reuse the caller's token when it is set, so nothing secret needs printing; else the sandbox makes one.
    token_env = "DBT_CLOUD_API_TOKEN"
    given_token = os.environ.get(token_env) or None
    with terminate_as_interrupt(), contextlib.ExitStack() as stop:
        with console.status("starting the sandbox") as status:
            stack = stop.enter_context(
                sandbox_stack(
                    workdir or DEFAULT_ROOT,
                    fresh=fresh,
                    prefect_port=prefect_port,
                    dbt_cloud_port=dbt_cloud_port,
                    tenant_file=tenant_file,
                    token=given_token,
                    progress=lambda message: status.update(message),
                )
            )
        print_stack(stack, token_given=given_token is not None)
        console.print("Press Ctrl-C to stop.")
        try:
            while stack.prefect.running():
                time.sleep(1.0)
        except KeyboardInterrupt:
            console.print("stopping the sandbox")
            return
        raise ExternalServiceError(
            f"the Prefect server stopped unexpectedly; log {stack.prefect.log_path}:\n{stack.prefect.log_tail()}"
        )


def print_stack(stack: SandboxStack, *, token_given: bool) -> None:
    """Where the stack's parts are and the `export` lines that let another shell's `dbt2prefect status`, `doctor`,
    `parity`... use it (`sandbox up` and `demo --keep` print the same)."""
    console.print(f"[bold green]sandbox up[/] in {escape(str(stack.paths.root))}", highlight=False)
    console.print(f"  dbt Cloud API   {stack.dbt_cloud.url}  (account {stack.dbt_cloud.account_id})", highlight=False)
    console.print(f"  Prefect UI      {stack.prefect.url}", highlight=False)
    console.print(f"  Prefect API     {stack.prefect.api_url}", highlight=False)
    console.print(f"  profile blocks  {', '.join(stack.blocks)}", highlight=False)
    if stack.worker is not None:
        console.print(f"  worker          pool {stack.worker.pool} (log {stack.worker.log_path})", highlight=False)
    console.print("In another shell:", highlight=False)
    for key, value in stack.environment().items():
        console.print(f"  export {key}={shell_word(value)}", highlight=False, markup=False, soft_wrap=True)
    if token_given:
        console.print(f"  # {stack.token_env}: the sandbox accepts the value already in your environment")
    else:
        # A throwaway token that only this loopback server accepts; shown once on the terminal, written nowhere.
        console.print(
            f"  export {stack.token_env}={stack.dbt_cloud.token}", highlight=False, markup=False, soft_wrap=True
        )
