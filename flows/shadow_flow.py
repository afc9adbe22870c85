"""Prefect entrypoint: report completed dbt Cloud runs by polling, where dbt Cloud's webhooks cannot reach Prefect.

Deploy it on a schedule shorter than the overlap (every 5 minutes, say) on Prefect OSS, or on Prefect Cloud
without the right to create webhooks. Each run reports the completed runs of the migrated jobs since the cursor in
the tenant's store, one `dbt2prefect.dbt_cloud.run.completed` event each (see `migration.shadow_poll` for what
holds across restarts).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger

from app.workspace import Workspace
from dbt2prefect.errors import ParameterError


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
