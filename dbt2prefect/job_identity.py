"""Which dbt Cloud job a `run_dbt_wg` run replaces, as Prefect shows it: a tag, the run's name, its artifacts.

Every schedule passes the job's id and name as the parameters `dbt_cloud_job_id` / `dbt_cloud_job_name`. A
Prefect schedule has no tags of its own (a scheduled run gets the deployment's), and flow-run events carry the
run's name and tags, not its parameters or schedule; so the flow names its run `job-<id> <name> (<generated>)`
and tags it `dbt-cloud-job-<id>` when it starts (for the UI's filters). Automations that follow a job (chained
jobs) match the run's name: Prefect's server caches a run's related resources (its tags among them) from the
run's first event for minutes, so a tag added at run time is missing from the events of that run.
A parity candidate run of a job (parameter `parity_candidate`) is named `parity-job-<id> ...`, so those
automations ignore it: after cutover, checking parity again must not start chained jobs or notify anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JOB_TAG_PREFIX = "dbt-cloud-job-"
PARITY_PREFIX = "parity-"
"""What a parity candidate run's name starts with, before `job-<id>`."""


def job_tag(job_id: int) -> str:
    """The tag of every flow run that replaces dbt Cloud job `job_id`."""
    return f"{JOB_TAG_PREFIX}{job_id}"


def run_name_prefix(job_id: int) -> str:
    """What the name of every run of job `job_id` starts with (`job-<id> `, the space included)."""
    return f"job-{job_id} "


def runs_of_job(job_id: int) -> str:
    """The flow-run name pattern (Prefect event matching, fnmatch) of every run of job `job_id`."""
    return f"{run_name_prefix(job_id)}*"


UNNAMED_RUN = "!*job-[0-9]*"
"""The flow-run name pattern of a run that no flow has named yet (neither `job-<id> ...` nor
`parity-job-<id> ...`): a scheduled run keeps the name Prefect generated until the flow starts, so one that
dies before (git clone, package install, infrastructure) is known only by this and its deployment."""


def job_label(parameters: Mapping[str, Any]) -> str | None:
    """`job-<id> <name>` of the job the parameters belong to (`parity-job-<id> <name>` for a parity candidate run
    of it), or None for a run of no job."""
    job_id = parameters.get("dbt_cloud_job_id")
    if job_id is None:
        return None
    name = parameters.get("dbt_cloud_job_name")
    label = f"{run_name_prefix(int(job_id))}{name}" if name else f"job-{job_id}"
    return f"{PARITY_PREFIX}{label}" if parameters.get("parity_candidate") else label


def job_parameters(job_id: int, job_name: str) -> dict[str, Any]:
    """The parameters that name a job on its schedule's runs."""
    return {"dbt_cloud_job_id": job_id, "dbt_cloud_job_name": job_name}
