"""Prefect entrypoint: run the tenant's dbt Core project with prefect-dbt's PrefectDbtRunner.

Deployment `dbt_wg` points here; each schedule passes its own parameters (one schedule per former dbt Cloud job).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed
from prefect.utilities.timeout import timeout

from app.workspace import Workspace
from dbt2prefect import prefect_heartbeat
from dbt2prefect.errors import ConfigError, DbtRunError, ParameterError, ProfileError
from dbt2prefect.names import job_key, job_label, job_tag
from dbt2prefect.params import validate
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.run_events import WARNED_RUN_STATE, emit_run_warned
from dbt2prefect.run_job import execute
from dbt2prefect.summary import to_markdown, to_table, warned_note

# A deployment's flow run (the process a worker started for it) returns as soon as it ends, not up to a second later;
# importing the module anywhere else patches nothing (see prefect_heartbeat).
prefect_heartbeat.install_in_flow_run_process()


def _artifact_key(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def _run_name() -> str:
    """`job-<id> <name> (<generated name>)` for a run of a dbt Cloud job's schedule; Prefect's own name otherwise."""
    label = job_label(flow_run.parameters)
    generated = str(flow_run.name)
    return f"{label} ({generated})" if label and not generated.startswith(label) else generated


def _tag_run(job_id: int) -> None:
    """Tag this flow run with its job (the UI filters runs by tag; see `dbt2prefect.names`)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    tag = job_tag(job_id)
    tags = list(context.flow_run.tags or [])
    if tag not in tags:
        with connect_prefect() as prefect:
            prefect.set_flow_run_tags(context.flow_run.id, [*tags, tag])
        context.flow_run.tags = [*tags, tag]


# No flow retries: a run retries itself only after a transient failure (see `execute`); Prefect's Retry button
# still reruns a failed run from its point of failure.
@flow(name="run_dbt_wg", log_prints=False, flow_run_name=_run_name)
def run_dbt_wg(
    command: str = "build",
    target: str | None = None,
    connection: str | None = None,
    select: str | None = None,
    exclude: str | None = None,
    selector: str | None = None,
    vars: str | None = None,
    full_refresh: bool = False,
    threads: int | None = None,
    state_path: str | None = None,
    project_dir: str | None = None,
    profiles_strategy: Literal["blocks", "local"] = "blocks",
    steps: list[str] | None = None,
    source_freshness: bool = False,
    generate_docs: bool = False,
    timeout_seconds: int | None = None,
    per_node_tasks: bool = True,
    node_task_runs: Literal["auto", "all", "states", "exceptions"] | None = None,
    dbt_cloud_job_id: int | None = None,
    dbt_cloud_job_name: str | None = None,
    parity_candidate: bool = False,
    shadow_of_run: int | None = None,
    env_vars: dict[str, str] | None = None,
    secret_env_vars: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run dbt for the tenant: one command with a selection, or several steps as in a dbt Cloud job.

    `target` is dbt's target.name; `connection` names the tenant target whose profile block connects (a dbt
    Cloud job's environment), when it is not the target's own. `dbt_cloud_job_id`/`dbt_cloud_job_name` name the
    dbt Cloud job a schedule replaces: the run is named and tagged `dbt-cloud-job-<id>` after it.
    `parity_candidate` marks a parity run of that job: named `parity-job-<id> ...`, it starts no chained job and
    sends no notification. `shadow_of_run` (a dbt Cloud run id) marks a shadow twin of that run: named
    `shadow job-<id> ...` and tagged `shadow` by whoever starts it, never with the job's tag.
    `env_vars` (name -> value) are set for dbt during the run, as dbt Cloud sets a job's environment variables;
    `secret_env_vars` (name -> Prefect Secret block) are read from their blocks at run time and set the same way,
    never logged.

    A failed node fails the flow, as it fails a dbt Cloud run: the run ends Failed with dbt's error as its
    message. Only a transient failure (a lock, a lost connection, a statement or warehouse timeout) is retried,
    from the point of failure with `dbt retry`, as `[tenant.retries]` allows; the failed attempts stay in the run record, the summary and the state message.
    A person reruns from the point of failure with `command="retry"` or Prefect's Retry button.
    `source_freshness` and `generate_docs` are dbt Cloud's checkboxes: they run, but their failure does not fail
    the run. Artifacts go to the tenant's run-artifact store; a summary is published as Prefect artifacts.
    A successful run in which a node warned ends Completed under the name `Completed with warnings`, its message
    naming the warned nodes, and emits `dbt2prefect.run.warned` (see `dbt2prefect.run_events`); each warned
    node's task run ends Completed under the name `Warned` (see `dbt2prefect.node_states`).
    Per-node task runs and their dbt log lines stay under `[tenant.observability] logs_events_per_minute`: a node
    that would not fit runs without them, and the summary's "Left out of Prefect" names it (see
    `dbt2prefect.node_budget`); every node's status stays in the node table artifact.

    `node_task_runs` (default: the tenant's `[tenant.observability] node_task_runs`, which defaults to "auto")
    chooses which nodes get a task run: "all", one per node while dbt runs (about 7 log lines and events per
    node); "states", one per node while dbt runs as in the lean mode, recorded from dbt's events with the node's
    state alone (2 events per node; see `dbt2prefect.state_task_runs`); or "exceptions": dbt runs as in the lean
    mode, and then only the nodes that failed, warned or ran longer than `slow_node_seconds` get a task run, named
    as in "all" and ending in the node's state (Failed, Completed named Warned, Completed) with dbt's message (see
    `dbt2prefect.exception_task_runs`); "auto" is "states" while the project's nodes times its cost per node fit in
    the budget, else "exceptions" (see `dbt2prefect.node_view`), and the summary says which view the run used and
    why. The run's own final state is the same in all of them.
    `per_node_tasks=False` (the lean mode) makes no task runs at all.
    """
    raw = dict(locals())
    logger = get_run_logger()
    run_id = str(flow_run.id)
    try:
        params = validate(raw)
        if params.dbt_cloud_job_id is not None and params.shadow_of_run is None:
            _tag_run(params.dbt_cloud_job_id)
        workspace = Workspace.open(os.environ.get("DBT2PREFECT_TENANT_FILE"))
        tenant = workspace.tenant
        with workspace, timeout(params.timeout_seconds, timeout_exc_type=TimeoutError):
            outcome = execute(
                params,
                tenant,
                run_id,
                run_count=flow_run.run_count,
                on_retry=_log_retry,
                store=workspace.store,
                prefect=workspace.prefect_gateway,
                # A worker's flow-run process (a deployment run, or its subflow) runs the code its worker pulled.
                deployment_run=prefect_heartbeat.in_flow_run_process(),
            )
    except (ConfigError, ParameterError, ProfileError) as exc:
        # Bad input fails the run at once, with the message as the state's.
        logger.error("%s", exc)
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    label = job_label(raw)
    about_job = job_key(params.dbt_cloud_job_id) if params.dbt_cloud_job_id is not None else outcome.target
    key = _artifact_key(f"{tenant.deployment_name}-{about_job}-summary")
    about = f"dbt run summary of dbt Cloud {label}" if label else "dbt run summary"
    create_markdown_artifact(to_markdown(outcome.summary, outcome.artifact_dir), key=key, description=about)
    rows = to_table(outcome.summary)
    if rows:
        create_table_artifact(rows, key=_artifact_key(f"{key}-nodes"), description="dbt node results")
    logger.info(
        "dbt%s on %s: %s; artifacts in %s",
        f" ({label})" if label else "",
        outcome.target,
        ", ".join(f"{s} {n}" for s, n in outcome.summary.counts.items()) or "no nodes",
        outcome.artifact_dir,
    )
    if outcome.failure is not None:
        # A node that failed in dbt is the run's outcome, not a crash: the run ends Failed with dbt's error as its
        # state message (Prefect logs it once, with the final state) and no Python traceback. A returned Failed
        # state still goes through Prefect's flow retries, as a raised error would.
        return Failed(message=outcome.failure, data=DbtRunError(outcome.failure))  # type: ignore[return-value]
    # A run that warned ends Completed under a name of its own, naming the warned nodes; the event tells
    # notifications which nodes warned (dbt Cloud's "Warns").
    emit_run_warned(outcome.summary, params.dbt_cloud_job_id)
    result = {
        "flow_run_id": run_id,
        "target": outcome.target,
        "counts": outcome.summary.counts,
        "artifact_dir": outcome.artifact_dir,
        "attempts": outcome.attempts,
    }
    warned = warned_note(outcome.summary)
    if outcome.note is not None:
        # A success after a transient failure says so where people look first: the run's state message.
        logger.warning("%s", outcome.note)
    if warned is not None:
        logger.warning("%s", warned)
        message = "; ".join(m for m in (warned, outcome.note) if m)
        return Completed(name=WARNED_RUN_STATE, message=message, data=result)  # type: ignore[return-value]
    if outcome.note is not None:
        return Completed(message=outcome.note, data=result)  # type: ignore[return-value]
    return result


def _log_retry(attempt: dict[str, Any]) -> None:
    get_run_logger().warning(
        "attempt %s failed for a transient cause (%s); retrying from the point of failure: %s",
        attempt["attempt"],
        attempt["transient"],
        attempt["failure"],
    )
