"""Deployment runs as a person watching the Prefect UI sees them: started, picked up by a worker, finished.

`run_deployment_now` is an ad-hoc run of a deployment (the UI's "Run" button, with parameters);
`fire_schedule` takes the next run that Prefect's scheduler made for one schedule and moves it to now, so the
run is the scheduler's own (its tags, its parameters), only earlier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dbt2prefect.prefect_gateway import PrefectGateway, connect_prefect
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun


class DeploymentRunError(SandboxError):
    """A deployment run did not reach a final state in time, or its schedule made no run."""

    exit_code = 3


@dataclass(frozen=True)
class DeploymentRun:
    """A finished deployment run."""

    flow_run_id: str
    name: str
    state: str
    """The state's name, e.g. `Completed`, `Completed with warnings`, `Failed`."""
    message: str
    deployment_id: str
    parameters: dict[str, Any]
    tags: tuple[str, ...]
    start_time: datetime | None = None
    end_time: datetime | None = None
    state_type: str = "UNKNOWN"
    """The state's type: a run that warned is `COMPLETED` under another name."""

    @property
    def completed(self) -> bool:
        return self.state_type == "COMPLETED"


def _summary(run: FlowRun) -> DeploymentRun:
    state = run.state
    return DeploymentRun(
        flow_run_id=str(run.id),
        name=run.name,
        state=(state.name or state.type.value) if state is not None else "Unknown",
        message=(state.message or "") if state is not None else "",
        deployment_id=str(run.deployment_id),
        parameters=dict(run.parameters or {}),
        tags=tuple(run.tags or ()),
        start_time=run.start_time,
        end_time=run.end_time,
        state_type=state.type.value if state is not None else "UNKNOWN",
    )


def _wait_final(prefect: PrefectGateway, flow_run_id: UUID, timeout: float) -> FlowRun:
    deadline = time.monotonic() + timeout
    while True:
        run = prefect.read_flow_run(flow_run_id)
        if run is None:
            raise DeploymentRunError(f"flow run {flow_run_id} is gone from the Prefect API")
        if run.state is not None and run.state.is_final():
            return run
        if time.monotonic() > deadline:
            state = run.state.name if run.state else "no state"
            raise DeploymentRunError(
                f"flow run {flow_run_id} is still {state} after {timeout:.0f}s; is a worker polling its work pool?"
            )
        time.sleep(1.0)


def _deployment_id(prefect: PrefectGateway, deployment: str) -> UUID:
    found = prefect.read_deployment(deployment)
    if found is None:
        raise DeploymentRunError(f"deployment {deployment} is not on the Prefect API; deploy it first")
    return found.id


def run_deployment_now(deployment: str, parameters: dict[str, Any], *, timeout: float = 900.0) -> DeploymentRun:
    """Start a run of `deployment` (`<flow>/<name>`) with `parameters` and wait until a worker has finished it.

    Raises:
        DeploymentRunError: the deployment is missing, or the run did not finish within `timeout`.
    """
    with connect_prefect() as prefect:
        run = prefect.create_flow_run(_deployment_id(prefect, deployment), parameters=parameters)
        return _summary(_wait_final(prefect, run.id, timeout))


def fire_schedule(
    deployment: str, slug: str, *, wait_for_scheduler: float = 120.0, timeout: float = 900.0
) -> DeploymentRun:
    """Run the next scheduler-made run of schedule `slug` now, and wait until a worker has finished it.

    Prefect's scheduler writes the run's first state without an event, and the events of the state changes that
    follow within minutes name it as their predecessor: Prefect's triggers hold them for up to 15 minutes. A trigger
    on this run (a chained job's) therefore fires late; start the upstream run of a chain with `run_deployment_now`.

    Raises:
        DeploymentRunError: the deployment or the schedule is missing or inactive, the scheduler made no run in
            time, or the run did not finish within `timeout`.
    """
    from prefect.client.schemas.objects import StateType

    with connect_prefect() as prefect:
        deployment_id = _deployment_id(prefect, deployment)
        schedule = next((s for s in prefect.read_schedules(deployment_id) if s.slug == slug), None)
        if schedule is None or not schedule.active:
            raise DeploymentRunError(f"schedule {slug} of {deployment} is missing or inactive: nothing fires")
        key = f"scheduled {deployment_id} {schedule.id} "
        deadline = time.monotonic() + wait_for_scheduler
        while True:
            runs = prefect.read_flow_runs(deployment_id, started_only=False, state_type=StateType.SCHEDULED)
            mine = sorted(
                (r for r in runs if (r.idempotency_key or "").startswith(key)),
                key=lambda r: r.expected_start_time or datetime.max.replace(tzinfo=UTC),
            )
            if mine:
                break
            if time.monotonic() > deadline:
                raise DeploymentRunError(
                    f"Prefect's scheduler made no run for {slug} within {wait_for_scheduler:.0f}s; "
                    "is the server's scheduler service on?"
                )
            time.sleep(1.0)
        run = mine[0]
        prefect.reschedule_flow_run(run.id, datetime.now(UTC))
        return _summary(_wait_final(prefect, run.id, timeout))


def wait_for_job_run(
    deployment: str,
    job_id: int,
    *,
    exclude: frozenset[str] = frozenset(),
    timeout: float = 300.0,
    start_timeout: float | None = None,
) -> DeploymentRun:
    """Wait for a run of `deployment` with `dbt_cloud_job_id == job_id` (one an automation starts), then until a
    worker has finished it (see `wait_for_run`)."""
    return wait_for_run(
        deployment,
        lambda parameters: parameters.get("dbt_cloud_job_id") == job_id,
        f"run of job {job_id}",
        exclude=exclude,
        timeout=timeout,
        start_timeout=start_timeout,
    )


def wait_for_run(
    deployment: str,
    match: Callable[[dict[str, Any]], bool],
    what: str,
    *,
    exclude: frozenset[str] = frozenset(),
    timeout: float = 300.0,
    start_timeout: float | None = None,
) -> DeploymentRun:
    """Wait for a run of `deployment` whose parameters `match` (one a trigger or automation starts), then until a
    worker has finished it.

    Args:
        what: the run in words, for the error (e.g. "run of job 42").
        exclude: flow-run ids that do not count (runs that existed before).
        timeout: how long the run may take to appear and finish.
        start_timeout: how long it may take to appear (default `timeout`).

    Raises:
        DeploymentRunError: the deployment is missing, no such run appeared within `start_timeout`, or it did not
            finish within `timeout`.
    """
    with connect_prefect() as prefect:
        deployment_id = _deployment_id(prefect, deployment)
        begun = time.monotonic()
        deadline, appear_by = begun + timeout, begun + min(timeout, start_timeout or timeout)
        while True:
            runs = prefect.read_flow_runs(deployment_id, started_only=False)
            mine = [r for r in runs if match(dict(r.parameters or {})) and str(r.id) not in exclude]
            if mine:
                return _summary(_wait_final(prefect, mine[0].id, max(deadline - time.monotonic(), 1.0)))
            if time.monotonic() > appear_by:
                waited = appear_by - begun
                raise DeploymentRunError(f"no {what} on {deployment} started within {waited:.0f}s")
            time.sleep(1.0)
