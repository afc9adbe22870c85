"""Task runs only for the nodes worth a look: the "exceptions" node view (`node_task_runs = "exceptions"`).

A task run per node costs about 7 log lines and events per node (3 of them its state events; docs/performance.md),
too many for Prefect Cloud's smaller plans on a large project. In this view dbt runs as in the lean mode (no task
run while it builds) and, once it has run, each node that failed, warned, or ran longer than
`[tenant.observability] slow_node_seconds` gets a task run of the flow run, recorded through the Prefect gateway:
- named as prefect-dbt names a node's task run (`<resource type> <name>`, see `task_run_name`),
- started Running and ended in the node's state: `Failed` with dbt's message, `Completed` named `Warned`
  (`dbt2prefect.node_states.WARNED_STATE`) with dbt's message, or `Completed` saying how long a slow node ran.
  The Prefect API stamps a state with the time it receives it, so the task run starts and ends when it is
  recorded; the node's execution time is in the node table.
So the UI's task-run list of the flow run, filtered by state, shows the failures and warnings. Every other node
has no task run; every node stays in the run's node table artifact and summary.

Recording a task run takes 2 API requests (Prefect Cloud counts them in its "API requests" bucket) and sends no log
line; a Prefect 3.9 server emits no event for a task run state set through the API, but each is counted as 2 log
lines and events all the same (Prefect Cloud's server is not open to check). So the task runs recorded in any 60 s
stay under both `[tenant.observability] logs_events_per_minute` and `api_requests_per_minute` (`budget`): one that
would not fit is left out and named in the summary, as in the per-node view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dbt2prefect.dbt_run import FAILED_STATUSES, WARN_STATUS, NodeResult
from dbt2prefect.node_budget import NodeBudget
from dbt2prefect.node_states import WARNED_STATE, state_message

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State

    from dbt2prefect.prefect_gateway import PrefectGateway
    from dbt2prefect.tenant import ObservabilitySettings

RECORDED_COST = 2
"""API requests of one recorded task run (create it Running, set its final state); also the events counted for it."""


def budget(observability: ObservabilitySettings) -> tuple[NodeBudget, str]:
    """The budget the recorded task runs stay under: the smaller of the two per-minute limits, and the setting
    that gives it (as the summary names it)."""
    events, requests = observability.logs_events_per_minute, observability.api_requests_per_minute
    if requests < events:
        return NodeBudget(requests), f"api_requests_per_minute = {requests}"
    return NodeBudget(events), f"logs_events_per_minute = {events}"


def exceptional(nodes: Sequence[NodeResult], slow_seconds: float) -> list[NodeResult]:
    """The nodes that get a task run, in run order: failed, warned, or ran longer than `slow_seconds`."""
    return [
        node
        for node in nodes
        if node.status in FAILED_STATUSES or node.status == WARN_STATUS or node.execution_time > slow_seconds
    ]


def task_run_name(resource_type: str, name: str, unique_id: str) -> str:
    """`<resource type> <name>`: the name prefect-dbt's per-node view gives a node's task run."""
    return f"{resource_type.lower()} {name or unique_id}"


def task_run_key(unique_id: str, step: int) -> str:
    """The node's task run key in its flow run: one per node and step (a node may run in several steps)."""
    return f"{unique_id}@step{step}"


def final_state(node: NodeResult, slow_seconds: float) -> State[Any]:
    """The state the node's task run ends in."""
    from prefect.states import Completed, Failed

    if node.status in FAILED_STATUSES:
        return Failed(message=state_message(node.unique_id, node.status, node.message))
    if node.status == WARN_STATUS:
        return Completed(name=WARNED_STATE, message=state_message(node.unique_id, node.status, node.message))
    return Completed(
        message=f"{node.unique_id} {node.status} in {node.execution_time:.1f} s, longer than "
        f"[tenant.observability] slow_node_seconds = {slow_seconds:g}"
    )


@dataclass
class Recording:
    """What recording task runs did (in this view, or over the steps of the "states" view): how many it recorded,
    and the API's failure that stopped it (None: none)."""

    count: int = 0
    failure: str | None = None


def record(
    prefect: PrefectGateway,
    flow_run_id: UUID,
    nodes: Sequence[NodeResult],
    slow_seconds: float,
    budget: NodeBudget,
) -> Recording:
    """Give each exceptional node of `nodes` its task run in the flow run, as far as `budget` admits them. The
    nodes the budget leaves out are in `budget.left_out`. A failure of the Prefect API stops the recording (dbt has
    run and its artifacts are still to be stored): it is returned, for the summary to say.

    Recording again (a retried flow run) answers the task runs already there, by their keys."""
    from prefect.states import Running

    from dbt2prefect.prefect_gateway import PrefectApiError

    recorded = 0
    for node in exceptional(nodes, slow_seconds):
        if not budget.admit(node.unique_id, RECORDED_COST):
            continue
        try:
            name = task_run_name(node.resource_type, node.name, node.unique_id)
            task_run = prefect.create_task_run(flow_run_id, name, task_run_key(node.unique_id, node.step), Running())
            prefect.set_task_run_state(task_run.id, final_state(node, slow_seconds))
        except PrefectApiError as exc:
            return Recording(recorded, str(exc))
        finally:
            budget.finished(node.unique_id)
        recorded += 1
    return Recording(recorded)
