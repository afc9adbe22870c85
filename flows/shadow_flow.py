"""Prefect entrypoints of the parallel-run period: hear completed dbt Cloud runs, and give each its shadow twin.

`poll_dbt_cloud_runs` reports completed dbt Cloud runs by polling, where dbt Cloud's webhooks cannot reach Prefect.
Deploy it on a schedule shorter than the overlap (every 5 minutes, say) on Prefect OSS, or on Prefect Cloud
without the right to create webhooks. Each run reports the completed runs of the migrated jobs since the cursor in
the tenant's store, one `dbt2prefect.dbt_cloud.run.completed` event each (see `migration.shadow_poll` for what
holds across restarts).

`shadow_run` is what that event starts (the `<deployment>-shadow` deployment's trigger, see
`migration.deployment`): the twin of one dbt Cloud run, its pair, and the readiness table as a Prefect markdown
artifact (see `Workspace.shadow_run` for which runs get a twin).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.artifacts import create_markdown_artifact

from app.workspace import Workspace
from dbt2prefect.errors import ParameterError
from dbt2prefect.names import shadow_tag
from dbt2prefect.params import ProfilesStrategy
from flows.parity_flow import artifact_key, start_candidate
from parity.runner import JobSpec
from parity.shadow import readiness_markdown


def _start(since: str | None) -> datetime | None:
    if since is None:
        return None
    try:
        return datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(
            f"since {since!r} is not a date and time; give one such as '2026-12-01T06:00:00Z'"
        ) from None


@flow(name="poll_dbt_cloud_runs", log_prints=False)
def poll_dbt_cloud_runs(
    job_ids: list[int] | None = None,
    since: str | None = None,
    overlap_minutes: float = 60.0,
    dbt_cloud_host: str | None = None,
    dbt_cloud_account_id: int | None = None,
) -> dict[str, Any]:
    """Report the dbt Cloud runs of the migrated jobs that completed since the last poll.

    Args:
        job_ids: dbt Cloud job ids; default every job the plan migrates (scheduled, chained, on demand).
        since: on the first poll only (no cursor yet), report runs that finished at or after this time (ISO 8601;
            default: now, so the first poll reports nothing and sets the cursor).
        overlap_minutes: how far back of the newest finish seen each poll lists again.
        dbt_cloud_host, dbt_cloud_account_id: override the tenant's dbt Cloud settings (the sandbox).
    """
    if overlap_minutes <= 0:
        raise ParameterError(f"overlap_minutes must be positive, got {overlap_minutes}")
    start = _start(since)
    with Workspace.open(
        os.environ.get("DBT2PREFECT_TENANT_FILE"),
        dbt_cloud_host=dbt_cloud_host,
        dbt_cloud_account_id=dbt_cloud_account_id,
    ) as workspace:
        reported = workspace.poll_dbt_cloud_runs(job_ids, start=start, overlap=timedelta(minutes=overlap_minutes))
    get_run_logger().info("reported %d completed dbt Cloud run(s)", len(reported))
    return {
        "reported": [
            {"job_id": run.job_id, "run_id": run.run_id, "status": run.status, "event_id": str(run.event_id)}
            for run in reported
        ]
    }


def start_twin(spec: JobSpec, parameters: dict[str, Any]) -> str:
    """Run the twin as a `run_dbt_wg` subflow tagged `shadow` from its creation (a tag added later is missing from
    the run's first events, see `dbt2prefect.names`); returns its flow-run id once it has ended."""
    with tags(shadow_tag()):
        return start_candidate(spec, parameters)


def readiness_artifact_key(tenant: str) -> str:
    """The key of the tenant's readiness artifact (each new version is the table after the latest pair)."""
    return artifact_key(f"shadow-readiness-{tenant}")


@flow(name="shadow_run", log_prints=False)
def shadow_run(
    job_id: int,
    dbt_cloud_run_id: int,
    status: str = "success",
    event: dict[str, Any] | None = None,
    report_dir: str | None = None,
    profiles_strategy: ProfilesStrategy = "blocks",
    dbt_cloud_host: str | None = None,
    dbt_cloud_account_id: int | None = None,
) -> dict[str, Any]:
    """Give a completed dbt Cloud run of a job its Prefect twin on the parity target, record the pair, and publish
    the readiness table.

    Args:
        job_id, dbt_cloud_run_id, status: the run, as the `dbt2prefect.dbt_cloud.run.completed` event reports it.
        event: that event's payload; a webhook event is verified against the tenant's webhook secret first.
        report_dir: the parity report root the pairs are kept under (default: the tenant's `parity_report_root`).
        profiles_strategy: where warehouse connections come from (`blocks` or `local`).
        dbt_cloud_host, dbt_cloud_account_id: override the tenant's dbt Cloud settings (the sandbox).
    """
    logger = get_run_logger()
    with Workspace.open(
        os.environ.get("DBT2PREFECT_TENANT_FILE"),
        report_dir=report_dir,
        dbt_cloud_host=dbt_cloud_host,
        dbt_cloud_account_id=dbt_cloud_account_id,
    ) as workspace:
        outcome = workspace.shadow_run(
            job_id,
            dbt_cloud_run_id,
            start_twin=start_twin,
            status=status,
            event=event,
            profiles_strategy=profiles_strategy,
        )
        table = readiness_markdown(list(workspace.readiness().values())) if outcome.action == "paired" else None
        tenant = workspace.tenant.name
    logger.info("dbt Cloud run %d of job %d: %s (%s)", dbt_cloud_run_id, job_id, outcome.action, outcome.why)
    if table is not None:
        create_markdown_artifact(
            table, key=readiness_artifact_key(tenant), description=f"Shadow readiness of tenant {tenant}"
        )
    pair = outcome.pair
    return {
        "action": outcome.action,
        "why": outcome.why,
        "verdict": None if pair is None else pair.verdict.value,
        "twin_run_id": None if pair is None else pair.prefect_run_id,
    }
