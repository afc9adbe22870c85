"""`dbt2prefect export`: dbt Cloud jobs, environments and latest successful runs → an inventory file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import JsonFlag, TenantFile, console, err_console, handle_errors, workspace_from
from dbt2prefect.tenant import REPO_ROOT

DEFAULT_OUTPUT = REPO_ROOT / ".dbt2prefect" / "inventory.json"


def register(app: typer.Typer) -> None:
    app.command("export")(export)


@handle_errors
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="Inventory file to write.")] = DEFAULT_OUTPUT,
    host: Annotated[
        str | None, typer.Option(help="dbt Cloud host, e.g. https://emea.dbt.com (default: tenant setting).")
    ] = None,
    account_id: Annotated[int | None, typer.Option(help="dbt Cloud account id (default: tenant setting).")] = None,
    project_id: Annotated[int | None, typer.Option(help="Only this project's jobs (default: tenant setting).")] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API token (default: tenant setting).")
    ] = None,
    active_only: Annotated[bool, typer.Option("--active-only", help="Leave deleted jobs out.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Concurrent API calls for runs/environments.")] = 8,
    json_output: JsonFlag = False,
    tenant_file: TenantFile = None,
) -> None:
    """Export every dbt Cloud job (raw API objects), its environment and latest successful run id."""
    from migration.errors import InventoryError
    from migration.export import inventory_output_problem, write_inventory

    with workspace_from(
        tenant_file, token_env=token_env, dbt_cloud_host=host, dbt_cloud_account_id=account_id
    ) as workspace:
        problem = inventory_output_problem(output)  # before any call to dbt Cloud
        if problem is not None:
            raise InventoryError(problem)
        show_bar = console.is_terminal and not json_output
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=not show_bar,
            transient=True,
        ) as bar:
            task = bar.add_task("jobs", total=None)

            def progress(phase: str, done: int, total: int) -> None:
                bar.update(task, description=phase, completed=done, total=total)

            inventory = workspace.inventory(
                project_id=project_id,
                include_deleted=not active_only,
                max_workers=workers,
                progress=progress,
            )
    path = write_inventory(inventory, output)
    if json_output:
        typer.echo(inventory.model_dump_json(indent=2))
        return
    deleted = sum(1 for j in inventory.jobs if j.job.is_deleted)
    with_runs = sum(1 for j in inventory.jobs if j.latest_successful_run_id is not None)
    console.print(
        f"Exported {len(inventory.jobs)} job(s) ({deleted} deleted), {len(inventory.environments)} environment(s), "
        f"{with_runs} job(s) with a successful run, from account {inventory.account_id} on {inventory.host} "
        f"to {path}",
        highlight=False,
        soft_wrap=True,
    )
    if inventory.missing_environments:
        ids = ", ".join(map(str, inventory.missing_environments))
        console.print(
            f"dbt Cloud answered 404 for environment(s) {ids} (jobs refer to them, e.g. deleted jobs); "
            "recorded in the inventory as missing_environments",
            highlight=False,
            soft_wrap=True,
        )
