"""Prefect entrypoint: parity of migrated dbt Cloud jobs (baseline run in dbt Cloud vs `run_dbt_wg` on `parity`).

For each job: the baseline is the job's latest successful dbt Cloud run (artifacts of the step that built), the
candidate is a `run_dbt_wg` subflow run with the job's translated parameters on the parity target (or a given
flow-run id from the run-artifact store). The report is written to the report folder and published as Prefect
markdown and table artifacts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from dbt2prefect.artifact_store import ArtifactStore
from dbt2prefect.errors import ConfigError
from dbt2prefect.profiles import profile_from_block, profile_from_local
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.dbt_cloud.auth import resolve_token
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.settings import RetryPolicy
from migration.export import read_job_context
from migration.translate import build_plan
from parity.model import ParityReport
from parity.render import report_markdown
from parity.runner import JobSpec, ParityContext, ProfileOutputs, calibrate_jobs, compare_jobs
from parity.settings import (
    load_parity_settings,
    parity_settings_path,
    production_targets,
    refuse_production_candidate,
)
from parity.store import tenant_report_root, write_report

ProfilesStrategy = Literal["blocks", "local"]


def artifact_key(name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def dbt_cloud_client(tenant: TenantSettings, host: str | None = None, account_id: int | None = None) -> DbtCloudClient:
    """A client for the tenant's dbt Cloud account (token from the environment or the Secret block)."""
    token, source = resolve_token(tenant.dbt_cloud.token_env, tenant.blocks.dbt_cloud_token_block)
    return DbtCloudClient(
        host or tenant.dbt_cloud.host,
        account_id if account_id is not None else tenant.dbt_cloud.account_id,
        token,
        token_source=source,
        retry=RetryPolicy.for_rate_limit_minutes(tenant.dbt_cloud.rate_limit_minutes),
    )


def job_specs(
    client: DbtCloudClient,
    tenant: TenantSettings,
    job_ids: Sequence[int] | None,
    candidate_runs: Mapping[int, str] | None = None,
) -> list[JobSpec]:
    """Translate the jobs (all scheduled jobs when `job_ids` is empty) into specs with their flow parameters.

    Raises:
        ConfigError: a requested job has no translated parameters (blocked in the plan).
    """
    if job_ids:
        jobs = [client.get_job(job_id) for job_id in job_ids]
    else:
        jobs = list(client.iter_jobs(project_id=tenant.dbt_cloud.project_id))
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


def profile_outputs(tenant: TenantSettings, strategy: ProfilesStrategy) -> ProfileOutputs:
    """target -> dbt profile output, from the target's Prefect block or the local profiles.yml."""

    def output(target: str) -> Mapping[str, Any]:
        if strategy == "local":
            if tenant.local_profiles_dir is None:
                raise ConfigError("profiles_strategy 'local' needs local_profiles_dir in the tenant settings")
            profile = profile_from_local(tenant.local_profiles_dir, tenant.profile_name, target)
        else:
            profile = profile_from_block(tenant.profile_name, target, tenant.block_name(target))
        outputs: Mapping[str, Any] = profile[tenant.profile_name]["outputs"]
        if target not in outputs:
            raise ConfigError(f"profile {tenant.profile_name!r} has no output for target {target!r}")
        result: Mapping[str, Any] = outputs[target]
        return result

    return output


def _start_candidate(spec: JobSpec, parameters: dict[str, Any]) -> str:
    """Run `run_dbt_wg` as a subflow; a failed run still stored its artifacts, so parity compares it."""
    from flows.dbt_wg_flow import run_dbt_wg

    state = run_dbt_wg(**parameters, return_state=True)
    flow_run_id = state.state_details.flow_run_id
    if flow_run_id is None:
        raise ConfigError(f"job {spec.job_id}: the candidate subflow has no flow-run id")
    return str(flow_run_id)


def publish(report: ParityReport) -> None:
    """Markdown report and a per-job table as Prefect artifacts."""
    base = artifact_key(f"parity-{report.tenant}")
    create_markdown_artifact(report_markdown(report), key=base, description=f"Parity {report.verdict.value}")
    rows = [
        {
            "job_id": job.job_id,
            "job_name": job.job_name,
            "verdict": job.verdict.value,
            "errors": len(job.errors()),
            "node_set_differences": len(job.node_sets),
            "status_differences": len(job.statuses),
            "row_count_rows": len(job.row_counts),
            "relations_value_checked": len(job.value_checks),
            "value_differences": sum(1 for r in job.value_checks if r.status.value == "different"),
            "baseline_run": job.baseline.run_id,
            "candidate_run": job.candidate.run_id,
        }
        for job in report.jobs
    ]
    create_table_artifact(rows, key=f"{base}-jobs", description="Parity verdict per job")
    findings = [
        {"job_id": job.job_id, **finding.model_dump(mode="json")}
        for job in report.jobs
        for finding in job.findings
        if finding.severity.value != "info"
    ]
    if findings:
        create_table_artifact(findings, key=f"{base}-findings", description="Parity findings")
    differing = [
        {
            "job_id": job.job_id,
            "unique_id": row.unique_id,
            "materialized": row.materialized,
            "differing_columns": ", ".join(row.differing_columns),
            "key": ", ".join(row.key),
            "sample_keys": "; ".join(", ".join(f"{k}={v}" for k, v in s.key.items()) for s in row.samples),
        }
        for job in report.jobs
        for row in job.value_checks
        if row.status.value == "different"
    ]
    if differing:
        create_table_artifact(differing, key=f"{base}-values", description="Relations whose values differ")


def build_report(
    tenant: TenantSettings,
    job_ids: list[int] | None,
    candidate_runs: dict[int, str],
    profiles_strategy: ProfilesStrategy,
    dbt_cloud_host: str | None = None,
    dbt_cloud_account_id: int | None = None,
    calibrate: bool = False,
) -> ParityReport:
    """Parity of the tenant's jobs: baselines from dbt Cloud, candidates given or started as `run_dbt_wg` subflows.

    With `calibrate`, each job's run on the parity target is compared with a new run on the calibration target
    (the same code, an A/A pair) instead of its baseline: the report names the build noise and its settings lines.
    """
    settings_file = parity_settings_path(tenant.settings_file) if tenant.settings_file else None
    settings = load_parity_settings(settings_file)
    # Refused before dbt Cloud is asked anything; the jobs' own targets are checked once they are known.
    refuse_production_candidate(settings, production_targets(tenant.dbt_cloud_environments), settings_file)
    if calibrate and settings.calibration_target not in tenant.targets:
        raise ConfigError(
            f"[parity] calibration_target {settings.calibration_target!r} is not one of the tenant's targets "
            f"({', '.join(tenant.targets)}); add it to [tenant] targets and to the dbt profile (a database or "
            "schema of its own), or set calibration_target to such a target"
        )
    with dbt_cloud_client(tenant, dbt_cloud_host, dbt_cloud_account_id) as client:
        specs = job_specs(client, tenant, job_ids, candidate_runs)
        context = ParityContext(
            tenant=tenant.name,
            deployment=tenant.deployment_name,
            store=ArtifactStore(tenant.artifact_store_url),
            baselines=client,
            settings=settings,
            project_dir=tenant.project_dir,
            profile_outputs=profile_outputs(tenant, profiles_strategy),
            start_candidate=_start_candidate,
            environments=tenant.dbt_cloud_environments,
            settings_source=settings_file,
        )
        return calibrate_jobs(specs, context) if calibrate else compare_jobs(specs, context)


@flow(name="parity_report", log_prints=False)
def parity_report(
    job_ids: list[int] | None = None,
    candidate_runs: dict[str, str] | None = None,
    report_dir: str | None = None,
    profiles_strategy: ProfilesStrategy = "blocks",
    dbt_cloud_host: str | None = None,
    dbt_cloud_account_id: int | None = None,
) -> dict[str, Any]:
    """Compare each migrated job's dbt Cloud baseline with a `run_dbt_wg` run on the parity target.

    Args:
        job_ids: dbt Cloud job ids; default every scheduled job of the plan.
        candidate_runs: job id -> flow-run id of an existing candidate run; other jobs get a new subflow run.
        report_dir: report root, a folder or an fsspec URL (default: the tenant's `parity_report_root`).
        profiles_strategy: where warehouse connections come from (`blocks` or `local`).
        dbt_cloud_host, dbt_cloud_account_id: override the tenant's dbt Cloud settings (the sandbox).
    """
    tenant = load_tenant(os.environ.get("DBT2PREFECT_TENANT_FILE"))
    logger = get_run_logger()
    runs = {int(job): run for job, run in (candidate_runs or {}).items()}
    report = build_report(tenant, job_ids, runs, profiles_strategy, dbt_cloud_host, dbt_cloud_account_id)
    folder = write_report(report, tenant_report_root(tenant, report_dir))
    publish(report)
    logger.info("parity %s for %d job(s); report in %s", report.verdict.value, len(report.jobs), folder)
    return {
        "verdict": report.verdict.value,
        "report_dir": folder,
        "jobs": {str(job.job_id): job.verdict.value for job in report.jobs},
    }
