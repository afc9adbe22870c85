"""`dbt2prefect run` (the flow, locally), `dbt2prefect run-job` (a job's deployment run on Prefect) and
`dbt2prefect blocks register` (a target's profile block)."""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from cli.common import HelpGroup, TenantFile, console, handle_errors, tenant_from, workspace_from
from dbt2prefect.errors import Dbt2PrefectError, DbtRunError, ParameterError
from dbt2prefect.params import COMMANDS, NodeTaskRuns, ProfilesStrategy, validate
from dbt2prefect.run_events import WARNED_RUN_STATE

# The commands a run accepts, as choices in --help (values: dbt's spelling, e.g. "source freshness").
DbtCommand = enum.Enum("DbtCommand", {name.replace(" ", "_"): name for name in COMMANDS})  # type: ignore[misc]
BUILD = DbtCommand("build")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("run-job")(run_job)
    blocks = typer.Typer(
        help="Prefect blocks that hold each target's dbt connection and the jobs' secrets.",
        no_args_is_help=True,
        cls=HelpGroup,
    )
    blocks.command("register")(register_block)
    blocks.command("secret")(save_secret_block)
    app.add_typer(blocks, name="blocks")


def _assignments(values: list[str] | None, option: str, example: str) -> dict[str, str] | None:
    """`NAME=VALUE` options (repeatable) as a mapping; None when none is given."""
    if not values:
        return None
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, item = value.partition("=")
        if not sep or not name:
            raise ParameterError(f"{option} {value!r}: write NAME=VALUE, e.g. {option} {example}")
        pairs[name] = item
    return pairs


@handle_errors
def run(
    command: Annotated[DbtCommand, typer.Option(help="dbt command.")] = BUILD,
    target: Annotated[str | None, typer.Option(help="dbt target (default from tenant settings).")] = None,
    connection: Annotated[
        str | None, typer.Option(help="Target whose profile block connects (default: the target's own).")
    ] = None,
    select: Annotated[str | None, typer.Option(help="dbt --select (space-separated).")] = None,
    exclude: Annotated[str | None, typer.Option(help="dbt --exclude (space-separated).")] = None,
    selector: Annotated[str | None, typer.Option(help="A selector from selectors.yml.")] = None,
    vars: Annotated[str | None, typer.Option("--vars", help="YAML/JSON mapping for dbt --vars.")] = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="dbt --full-refresh.")] = False,
    threads: Annotated[int | None, typer.Option(help="dbt --threads.")] = None,
    state_path: Annotated[str | None, typer.Option(help="State folder, or 'latest'.")] = None,
    project_dir: Annotated[str | None, typer.Option(help="dbt project folder (default: the tenant's).")] = None,
    profiles_strategy: Annotated[
        ProfilesStrategy, typer.Option(help="Connections from Prefect blocks or a local profiles.yml.")
    ] = "blocks",
    step: Annotated[
        list[str] | None, typer.Option("--step", metavar="<command>", help="A full dbt command line; repeatable.")
    ] = None,
    source_freshness: Annotated[bool, typer.Option(help="Run the freshness checkbox step first.")] = False,
    generate_docs: Annotated[bool, typer.Option(help="Run the docs checkbox step last.")] = False,
    timeout_seconds: Annotated[int | None, typer.Option(help="Fail the run after this many seconds.")] = None,
    lean: Annotated[bool, typer.Option("--lean", help="No per-node task runs (summary kept).")] = False,
    node_task_runs: Annotated[
        NodeTaskRuns | None,
        typer.Option(
            help="Which nodes get a task run: 'all' while dbt runs, 'states' while dbt runs (its state alone), "
            "'exceptions' (failed, warned, slow) after it, or 'auto' (states while the project's nodes fit the "
            "events budget, else exceptions; default: the tenant's setting)."
        ),
    ] = None,
    dbt_cloud_job_id: Annotated[
        int | None, typer.Option(help="The dbt Cloud job this run stands for (names and tags the run).")
    ] = None,
    dbt_cloud_job_name: Annotated[str | None, typer.Option(help="That job's name (names the run).")] = None,
    parity_candidate: Annotated[
        bool,
        typer.Option("--parity-candidate", help="A parity run of the job: starts no chained job, notifies no one."),
    ] = False,
    shadow_of_run: Annotated[
        int | None,
        typer.Option(help="A shadow twin of this dbt Cloud run: named 'shadow job-<id> ...', no job tag."),
    ] = None,
    env_var: Annotated[
        list[str] | None,
        typer.Option("--env-var", metavar="<NAME=VALUE>", help="A variable set for dbt during the run; repeatable."),
    ] = None,
    secret_env_var: Annotated[
        list[str] | None,
        typer.Option(
            "--secret-env-var",
            metavar="<NAME=BLOCK>",
            help="A DBT_ENV_SECRET* variable read from a Prefect Secret block; repeatable.",
        ),
    ] = None,
    tenant_file: TenantFile = None,
) -> None:
    """Run the `run_dbt_wg` flow here, with the same parameters a schedule would pass."""
    raw = {
        "command": command.value,
        "target": target,
        "connection": connection,
        "select": select,
        "exclude": exclude,
        "selector": selector,
        "vars": vars,
        "full_refresh": full_refresh,
        "threads": threads,
        "state_path": state_path,
        "project_dir": project_dir,
        "profiles_strategy": profiles_strategy,
        "steps": step or None,
        "source_freshness": source_freshness,
        "generate_docs": generate_docs,
        "timeout_seconds": timeout_seconds,
        "per_node_tasks": not lean,
        "node_task_runs": node_task_runs,
        "dbt_cloud_job_id": dbt_cloud_job_id,
        "dbt_cloud_job_name": dbt_cloud_job_name,
        "parity_candidate": parity_candidate,
        "shadow_of_run": shadow_of_run,
        "env_vars": _assignments(env_var, "--env-var", "DBT_REGION=uk"),
        "secret_env_vars": _assignments(secret_env_var, "--secret-env-var", "DBT_ENV_SECRET_KEY=my-secret-block"),
    }
    validate(raw)
    tenant_from(tenant_file)
    if tenant_file is not None:
        os.environ["DBT2PREFECT_TENANT_FILE"] = str(tenant_file)
    from dbt2prefect.prefect_api import ensure_api

    ensure_api()
    from dbt2prefect import prefect_heartbeat
    from flows.dbt_wg_flow import run_dbt_wg

    prefect_heartbeat.install()  # this process runs the flow: its run returns as soon as it ends
    state = run_dbt_wg(**raw, return_state=True)
    if state.is_completed():
        result = state.result()
        counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
        console.print(f"[green]succeeded[/] on {escape(str(result['target']))}: {escape(counts)}")
        if state.name == WARNED_RUN_STATE:
            console.print(f"[yellow]{escape(str(state.message).split('; ')[0])}[/]")
        if result.get("attempts"):
            from dbt2prefect.run_job import describe_attempts

            # Never a plain success: the failed attempts before it are what a person must see.
            console.print(f"[yellow]{escape(describe_attempts(result['attempts']))}[/]")
        console.print(f"artifacts: {result['artifact_dir']}", markup=False)
        return
    try:
        state.result()
    except Dbt2PrefectError:
        raise  # its own exit code: 2 for bad input (a missing profile block too), 1 when dbt failed
    except Exception as exc:
        raise DbtRunError(f"run_dbt_wg failed: {exc}") from None


@handle_errors
def register_block(
    target: Annotated[str, typer.Option(help="Target whose block to create or update.")],
    adapter: Annotated[
        Literal["snowflake", "duckdb"] | None,
        typer.Option(
            help="snowflake reads the SNOWFLAKE_* environment variables. Default: duckdb with --duckdb-path or on a "
            "sandbox's tenant ([tenant.sandbox] warehouse set: the sandbox's file for the target), else snowflake."
        ),
    ] = None,
    duckdb_path: Annotated[
        str | None, typer.Option(help="DuckDB file (adapter duckdb; default on a sandbox: its file for the target).")
    ] = None,
    tenant_file: TenantFile = None,
) -> None:
    """Create or update the Prefect block holding TARGET's connection, from environment variables.

    Secrets are read from the environment and never echoed.
    """
    from dbt2prefect.profiles import block_from_env

    tenant = tenant_from(tenant_file)
    if target not in tenant.targets:
        raise ParameterError(f"--target {target!r} is not one of {', '.join(tenant.targets)}")
    sandbox = tenant.sandbox.warehouse
    adapter = adapter or ("duckdb" if sandbox is not None or duckdb_path else "snowflake")
    name = tenant.block_name(target)
    if adapter == "duckdb" and duckdb_path is None and sandbox is not None:
        from sandbox.stack import register_profile_blocks

        register_profile_blocks(tenant, sandbox, [target])  # the block the sandbox saves, raw data attached
        console.print(f"block [bold]{escape(name)}[/] saved (duckdb, the sandbox's {escape(str(sandbox))})")
        return
    if adapter == "duckdb":
        if not duckdb_path:
            raise ParameterError("--adapter duckdb needs --duckdb-path FILE")
        block = block_from_env("duckdb", os.environ, {"path": duckdb_path, "threads": 4})
    else:
        block = block_from_env("snowflake", os.environ)
    block.save(name, overwrite=True)
    console.print(f"block [bold]{escape(name)}[/] saved ({adapter}; secret fields not shown)")


@handle_errors
def save_secret_block(
    block: Annotated[str, typer.Argument(metavar="BLOCK", help="The Secret block to create or replace.")],
    from_env: Annotated[
        str | None,
        typer.Option(
            "--from-env",
            metavar="<variable>",
            help="Read the value from this environment variable (e.g. after `read -rs NAME && export NAME`); "
            "without it, the value is asked for and not echoed.",
        ),
    ] = None,
) -> None:
    """Save a dbt Cloud secret's value as the Prefect Secret block a job's runs read (the plan's env_var_secret
    finding names the block). The value never appears on the command line or in the output."""
    from dbt2prefect.run_env import save_secret

    if from_env is not None:
        value = os.environ.get(from_env)
        if not value:
            raise ParameterError(
                f"--from-env {from_env}: the variable is not set or empty; set it first without echoing the value: "
                f"read -rs {from_env} && export {from_env}"
            )
    else:
        value = typer.prompt(f"value for Secret block {block}", hide_input=True)
    save_secret(block, value)
    console.print(f"Secret block [bold]{escape(block)}[/] saved (value not shown)")


@handle_errors
def run_job(
    job: Annotated[str, typer.Argument(help="The job's id, or its name or part of it (one job must match).")],
    target: Annotated[
        str | None, typer.Option(help="Run on this tenant target (default: the target the job's schedule has).")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run to end; exit 1 unless it ends Completed.")
    ] = False,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from-file",
            help="Plan from this inventory (`dbt2prefect export`) instead of dbt Cloud read live.",
        ),
    ] = None,
    tenant_file: TenantFile = None,
) -> None:
    """Start a run of one job now on Prefect, as its schedule would: a deployment run with the job's parameters.

    The run has the job's parameters from the current plan (its schedule's, or its trigger's for a chained job),
    is named `job-<id> <job name> (run-job)` and tagged `dbt-cloud-job-<id>`, so the triggers of the jobs chained
    to it and its notifications follow it like a scheduled run. A worker of the deployment's work pool runs it.
    Prints the flow run's id and its page in the Prefect UI. A job or target that does not match exits 2 (listing
    the candidates); with --wait, a run that ends other than Completed exits 1.
    """
    with workspace_from(tenant_file) as workspace:
        started = workspace.run_job(job, target=target, from_file=from_file)
        console.print(
            f"Started job {started.job_id} {escape(repr(started.job_name))} on target "
            f"{escape(str(started.parameters.get('target')))}: flow run {started.flow_run_id}",
            highlight=False,
            soft_wrap=True,  # ids and the URL stay whole for copying; the terminal wraps the line
        )
        console.print(f"  name: {escape(started.name)}", highlight=False, soft_wrap=True)
        console.print(
            f"  Prefect UI: {escape(started.url or '(unknown: set PREFECT_UI_URL)')}", highlight=False, soft_wrap=True
        )
        if not wait:
            return
        console.print("Waiting for it to end (a worker of the deployment's work pool runs it)...")
        ended = workspace.wait_for_run(started.flow_run_id)
    state = ended.state
    name = (state.name if state is not None else None) or "unknown"
    message = f": {state.message}" if state is not None and state.message else ""
    console.print(
        f"Flow run {started.flow_run_id} ended {escape(name)}{escape(message)}", highlight=False, soft_wrap=True
    )
    if state is None or not state.is_completed():
        raise typer.Exit(1)
