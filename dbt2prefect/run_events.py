"""The event a `run_dbt_wg` run emits when it succeeded with warnings (dbt Cloud's "Warns" job notification).

A run whose data tests or source freshness checks warned ends Completed under the name `WARNED_RUN_STATE`. The flow
also emits `RUN_WARNED_EVENT` about its own flow run, naming the warned nodes (a state event carries no payload of
the flow's), under the run's name at the time (after the `job-<id> <name>` rename, see `dbt2prefect.names`), which is what
automations that follow a job match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbt2prefect.names import job_tag

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun
    from prefect.events import Event

    from dbt2prefect.summary import RunSummary

RUN_WARNED_EVENT = "dbt2prefect.run.warned"
WARNED_RUN_STATE = "Completed with warnings"
"""The name of the Completed state a run that warned ends in. Prefect names a flow run's state events after the
state (`prefect.flow-run.Completed with warnings`): whatever follows successful runs follows both names."""
LISTED_NODES = 20
"""At most this many warned nodes are named in the event's payload (the count covers all of them)."""


def warned_event(
    summary: RunSummary,
    flow_run: FlowRun,
    flow_name: str,
    deployment_name: str | None,
    job_id: int | None,
) -> Event | None:
    """The `RUN_WARNED_EVENT` of a run, or None when the run failed or no node warned.

    The payload holds the number of warned nodes, the first `LISTED_NODES` of their unique ids and the dbt Cloud
    job id (None for a run of no job): never node messages, which can quote data.
    """
    from prefect.events import Event

    unique_ids = list(dict.fromkeys(node.unique_id for node in summary.warned))
    if not summary.success or not unique_ids:
        return None
    related: list[dict[str, str]] = []
    if flow_run.deployment_id is not None:
        deployment = {"prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}"}
        if deployment_name:
            deployment["prefect.resource.name"] = deployment_name
        related.append({**deployment, "prefect.resource.role": "deployment"})
    related.append(
        {
            "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": flow_name,
        }
    )
    if job_id is not None:
        related.append({"prefect.resource.id": f"prefect.tag.{job_tag(job_id)}", "prefect.resource.role": "tag"})
    payload: dict[str, Any] = {
        "warned_nodes": len(unique_ids),
        "unique_ids": unique_ids[:LISTED_NODES],
        "dbt_cloud_job_id": job_id,
    }
    return Event(
        event=RUN_WARNED_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.name": flow_run.name},
        related=related,
        payload=payload,
    )


def emit_run_warned(summary: RunSummary, job_id: int | None) -> Event | None:
    """Emit the current flow run's `RUN_WARNED_EVENT` when it has one; return what was emitted.

    Call it from inside the flow run, after its rename. Prefect's events worker sends the event in the background
    (and drains before the process exits) and adds the run's other related resources (work pool, queue, tags).
    """
    from prefect.context import FlowRunContext
    from prefect.events import emit_event
    from prefect.runtime import deployment

    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow is None:
        return None
    flow_run = context.flow_run
    deployment_name = deployment.name if flow_run.deployment_id is not None else None
    event = warned_event(summary, flow_run, context.flow.name, deployment_name, job_id)
    if event is None:
        return None
    return emit_event(
        event.event,
        resource=event.resource.root,
        related=event.related,
        payload=event.payload,
        id=event.id,
        occurred=event.occurred,
    )
