"""Prefect entrypoint: parity of migrated dbt Cloud jobs (baseline run in dbt Cloud vs `run_dbt_wg` on `parity`).

For each job: the baseline is the job's latest successful dbt Cloud run (artifacts of the step that built), the
candidate is a `run_dbt_wg` subflow run with the job's translated parameters on the parity target (or a given
flow-run id from the run-artifact store). The report is written to the report folder and published as Prefect
markdown and table artifacts.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from app.workspace import Workspace
from dbt2prefect.errors import ConfigError
from dbt2prefect.params import ProfilesStrategy
from parity.model import ParityReport
from parity.render import report_markdown
from parity.runner import JobSpec


def artifact_key(name: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def start_candidate(spec: JobSpec, parameters: dict[str, Any]) -> str:
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
    logger = get_run_logger()
    runs = {int(job): run for job, run in (candidate_runs or {}).items()}
    with Workspace.open(
        os.environ.get("DBT2PREFECT_TENANT_FILE"),
        report_dir=report_dir,
        dbt_cloud_host=dbt_cloud_host,
        dbt_cloud_account_id=dbt_cloud_account_id,
    ) as workspace:
        report = workspace.parity_report(job_ids, runs, profiles_strategy, start_candidate=start_candidate)
        folder = workspace.write_parity_report(report)
    publish(report)
    logger.info("parity %s for %d job(s); report in %s", report.verdict.value, len(report.jobs), folder)
    return {
        "verdict": report.verdict.value,
        "report_dir": folder,
        "jobs": {str(job.job_id): job.verdict.value for job in report.jobs},
    }
