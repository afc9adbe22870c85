"""Run one job now, as its schedule would: `dbt2prefect run-job JOB`.

The job is found in the plan by id or by name (one match); the run is a deployment run of the tenant's deployment
with the job's parameters from the plan (its schedule's, or its trigger's for a chained job), named
`job-<id> <job name> (run-job)` and tagged `dbt-cloud-job-<id>` at creation (`dbt2prefect.names`). So the
automations that follow the job's runs (the triggers of the jobs chained to it, its notifications) treat it like a
scheduled run of the job, and the Prefect UI lists it with the job's runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dbt2prefect.names import job_tag, started_run_name
from dbt2prefect.params import validate
from migration.errors import RunJobError
from migration.plan import MigrationPlan, PlannedJob

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from dbt2prefect.prefect_gateway import PrefectGateway

RUNNABLE = ("scheduled", "chained", "on_demand")
"""The plan statuses of jobs that have a Prefect run: the others run in CI or were not migrated."""


@dataclass(frozen=True)
class StartedRun:
    """A run `run-job` started: its flow run on Prefect and what it was started with."""

    job_id: int
    job_name: str
    flow_run_id: UUID
    name: str
    parameters: dict[str, Any]
    tags: list[str]
    url: str | None
    """The run's page in the Prefect UI (None when the UI's address is unknown)."""


def _listing(jobs: Sequence[PlannedJob]) -> str:
    return "; ".join(f"{job.job_id} {job.job_name!r} ({job.status})" for job in jobs)


def find_job(plan: MigrationPlan, job: str) -> PlannedJob:
    """The plan's job whose id is `job`, else whose name is `job` (ignoring case), else whose name contains it.

    Raises:
        RunJobError: no job matches, or several do (the message lists them).
    """
    text = job.strip()
    if text.isascii() and text.isdigit():
        found = [j for j in plan.jobs if j.job_id == int(text)]
    else:
        wanted = text.casefold()
        found = [j for j in plan.jobs if j.job_name.casefold() == wanted]
        if not found:
            found = [j for j in plan.jobs if wanted and wanted in j.job_name.casefold()]
    if len(found) == 1:
        return found[0]
    if found:
        raise RunJobError(
            f"{len(found)} jobs match {job!r}: {_listing(found)}; name one of them by its id, e.g. "
            f"`dbt2prefect run-job {found[0].job_id}`"
        )
    runnable = [j for j in plan.jobs if j.status in RUNNABLE]
    raise RunJobError(
        f"no job of the plan has the id or name {job!r}; give a job id or (part of) a job name, one of: "
        f"{_listing(runnable) or 'none (the plan has no job with a Prefect run)'}"
    )


def job_run_parameters(
    plan: MigrationPlan, job: PlannedJob, *, target: str | None = None, targets: Sequence[str] = ()
) -> dict[str, Any]:
    """The parameters of a run of `job`, as Prefect stores them: its schedule's (or trigger's) in the plan; with
    `target`, on that tenant target (its own connection, in place of the job's environment's).

    Raises:
        RunJobError: the job has no Prefect run (CI, not migrated, blocked), or `target` is not one of `targets`.
    """
    schedule = next((s for s in plan.schedules if s.job_id == job.job_id), None)
    parameters = schedule.run_parameters if schedule is not None else job.run_parameters
    if job.status not in RUNNABLE or parameters is None:
        raise RunJobError(
            f"job {job.job_id} ({job.job_name!r}) is {job.status.replace('_', ' ')} in the plan, so it has no "
            "Prefect run to start; see `dbt2prefect plan` for why (a CI job runs in its GitHub Actions workflow)"
        )
    if target is None:
        return parameters.to_api()
    if target not in targets:
        raise RunJobError(f"--target {target!r} is not a target of the tenant; use one of: {', '.join(targets)}")
    raw = {**parameters.to_api(), "target": target}
    raw.pop("connection", None)
    return validate(raw).to_api()


def flow_run_url(flow_run_id: UUID) -> str | None:
    """The flow run's page in the Prefect UI of the API the settings name (PREFECT_UI_URL, else derived from
    PREFECT_API_URL); None when it cannot be told."""
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{ui.rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def start_job_run(prefect: PrefectGateway, deployment: str, job: PlannedJob, parameters: dict[str, Any]) -> StartedRun:
    """Create a run of the deployment `<flow>/<name>` for `job` with `parameters` (see the module docstring).

    Raises:
        RunJobError: the deployment does not exist on this Prefect API.
        PrefectApiError: the Prefect API failed.
    """
    found = prefect.read_deployment(deployment)
    if found is None:
        raise RunJobError(
            f"deployment {deployment} does not exist on the Prefect API {prefect.api_url}; create it with "
            "`dbt2prefect apply` (or check PREFECT_API_URL)"
        )
    name = started_run_name(parameters)
    run = prefect.create_flow_run(found.id, parameters, name=name, tags=[job_tag(job.job_id)])
    return StartedRun(
        job_id=job.job_id,
        job_name=job.job_name,
        flow_run_id=run.id,
        name=run.name,
        parameters=dict(run.parameters),
        tags=list(run.tags),
        url=flow_run_url(run.id),
    )


def wait_for_run(
    prefect: PrefectGateway,
    flow_run_id: UUID,
    *,
    poll_seconds: float = 2.0,
    sleep: Callable[[float], Any] = time.sleep,
) -> FlowRun:
    """Read the flow run every `poll_seconds` until its state is final; the run as last read.

    Raises:
        RunJobError: the run no longer exists (it was deleted).
        PrefectApiError: the Prefect API failed.
    """
    while True:
        run = prefect.read_flow_run(flow_run_id)
        if run is None:
            raise RunJobError(f"flow run {flow_run_id} was deleted while waiting for it")
        if run.state is not None and run.state.is_final():
            return run
        sleep(poll_seconds)
