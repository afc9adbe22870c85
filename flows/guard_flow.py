"""Prefect entrypoint: the guarded window after cutover (see `migration.guard`).

The deployment `<deployment>-guard` runs this flow; its trigger starts a run each time a run of a job on the
tenant's deployment ends Failed or Crashed, with that run's id. The flow decides from the ledger, the run and dbt
Cloud's recent runs of the job whether the failure is one the guard acts on, and then notifies the job's
destinations or also rolls the job back, as `[tenant.shadow]` says; once per failed run.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger

from app.workspace import Workspace


@flow(name="guard", log_prints=False)
def guard(flow_run_id: str) -> dict[str, Any]:
    """Watch one finished run of the deployment: nothing, notify, or roll back (see `migration.guard`).

    Args:
        flow_run_id: the finished run's id (or its event resource id, `prefect.flow-run.<id>`).
    """
    with Workspace.open(os.environ.get("DBT2PREFECT_TENANT_FILE")) as workspace:
        outcome = workspace.guard(flow_run_id)
    get_run_logger().info("guard: %s (%s)", outcome.decision.action, outcome.decision.reason)
    return {
        "action": outcome.decision.action,
        "reason": outcome.decision.reason,
        "job_id": outcome.job_id,
        "ledger_record": outcome.record.file_name if outcome.record is not None else None,
        "rolled_back": outcome.rollback is not None,
        "notified": list(outcome.notified),
    }
