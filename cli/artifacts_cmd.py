"""`dbt2prefect artifacts fetch`: a stored run's dbt artifacts → a local folder (e.g. slim CI's `--state`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import HelpGroup, TenantFile, console, handle_errors, workspace_from


def register(app: typer.Typer) -> None:
    artifacts = typer.Typer(
        help="The run-artifact store of the tenant's deployment.", no_args_is_help=True, cls=HelpGroup
    )
    artifacts.command("fetch")(fetch)
    app.add_typer(artifacts, name="artifacts")


@handle_errors
def fetch(
    target: Annotated[str, typer.Option(help="Target whose latest successful run to fetch, e.g. prod.")],
    to: Annotated[Path, typer.Option("--to", help="Folder to copy manifest.json and the other artifacts into.")],
    tenant_file: TenantFile = None,
) -> None:
    """Copy the artifacts of the latest successful run on TARGET into a folder, for `dbt ... --defer --state`.

    Before any run of TARGET is in the store (no job of it cut over yet), the manifest of dbt Cloud's latest
    successful run in an environment that [tenant.dbt_cloud_environments] maps to TARGET is fetched instead (the
    state dbt Cloud's own CI defers to); the output names the run used. That needs the dbt Cloud token.
    """
    with workspace_from(tenant_file) as workspace:
        fetched = workspace.fetch_artifacts(target, to)
    if fetched.dbt_cloud_state is not None:
        console.print(
            f"no run of {workspace.tenant.deployment_name} on target {target!r} is in the artifact store yet: "
            f"fetched the manifest of {fetched.dbt_cloud_state.describe()} into {to}",
            markup=False,
            soft_wrap=True,
        )
    elif fetched.run is not None:
        console.print(f"fetched run {fetched.run.flow_run_id} ({target}) into {to}", markup=False)
