"""The jobs parity compares: translated from dbt Cloud as the plan translates them, through the cutover ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dbt2prefect.errors import ConfigError
from dbt2prefect.tenant import TenantSettings
from migration.cutover import jobs_as_planned
from migration.dbt_cloud.client import DbtCloudClient
from migration.export import read_job_context
from migration.ledger import Ledger
from migration.translate import build_plan
from parity.runner import JobSpec


def job_specs(
    client: DbtCloudClient,
    tenant: TenantSettings,
    ledger: Ledger,
    job_ids: Sequence[int] | None,
    candidate_runs: Mapping[int, str] | None = None,
) -> list[JobSpec]:
    """Translate the jobs (all scheduled jobs when `job_ids` is empty) into specs with their flow parameters.

    A job the ledger shows as (being) cut over is taken as the ledger recorded it before cutover
    (`migration.cutover.jobs_as_planned`): its dbt Cloud schedule trigger is off by then, and the candidate must
    run the parameters of the schedule that replaced it.

    Raises:
        ConfigError: a requested job has no translated parameters (blocked in the plan), or a candidate run names
            a job that is not compared.
    """
    if job_ids:
        live = [client.get_job(job_id) for job_id in job_ids]
    else:
        live = list(client.iter_jobs(project_id=tenant.dbt_cloud.project_id))
    jobs = jobs_as_planned(live, ledger)
    # The candidate runs with the job's schedule parameters, its environment variables included.
    environments, variables = read_job_context(client, jobs)
    plan = build_plan(jobs, tenant, environments, variables=variables)
    runs = dict(candidate_runs or {})
    specs: list[JobSpec] = []
    for planned in plan.jobs:
        if not job_ids and planned.status != "scheduled":
            continue
        if planned.parameters is None:
            reasons = sorted({f.reason_code for f in plan.findings if f.job_id == planned.job_id})
            raise ConfigError(
                f"job {planned.job_id} ({planned.job_name}) has no translated parameters ({', '.join(reasons)}); "
                "see `dbt2prefect plan` and fix or leave the job out"
            )
        specs.append(
            JobSpec(
                job_id=planned.job_id,
                name=planned.job_name,
                parameters=planned.parameters,
                candidate_run_id=runs.get(planned.job_id),
            )
        )
    unknown = sorted(set(runs) - {spec.job_id for spec in specs})
    if unknown:
        raise ConfigError(f"--candidate-run names job(s) {unknown} that are not compared; add them with --job")
    return specs
