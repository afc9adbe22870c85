"""`dbt2prefect artifacts fetch`: a stored run's dbt artifacts → a local folder (e.g. slim CI's `--state`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import HelpGroup, TenantFile, console, handle_errors, tenant_from
from dbt2prefect.errors import ParameterError


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
    from dbt2prefect.artifact_store import ArtifactStore

    tenant = tenant_from(tenant_file)
    if target not in tenant.targets:
        raise ParameterError(f"--target {target!r} is not one of {', '.join(tenant.targets)}")
    store = ArtifactStore(tenant.artifact_store_url)
    if store.latest(tenant.name, tenant.deployment_name, target) is None:
        from flows.parity_flow import dbt_cloud_client
        from migration.ci_state import fetch_dbt_cloud_state, target_environments

        environments = target_environments(tenant, target)
        with dbt_cloud_client(tenant) as client:  # the tenant's client, with its rate-limit retry policy
            state = fetch_dbt_cloud_state(client, environments, to)
        console.print(
            f"no run of {tenant.deployment_name} on target {target!r} is in the artifact store yet: fetched the "
            f"manifest of {state.describe()} into {to}",
            markup=False,
            soft_wrap=True,
        )
        return
    key = store.download_latest(tenant.name, tenant.deployment_name, target, to)
    console.print(f"fetched run {key.flow_run_id} ({target}) into {to}", markup=False)
