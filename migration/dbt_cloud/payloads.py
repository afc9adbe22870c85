"""Request bodies the API accepts: job updates are a full body of writable fields only.

Rules from the API notes (§4): no PATCH, so send everything writable; never `triggers.custom_branch_only`
(the API answers 400 since it was deprecated); never `state=2` (that deletes the job); keep `schedule` with
null keys dropped and only the keys its date/time types use.
"""

from __future__ import annotations

from typing import Any

from migration.dbt_cloud.errors import DbtCloudBadRequestError
from migration.dbt_cloud.models import Job, JobState

REQUIRED_JOB_FIELDS = (
    "account_id",
    "project_id",
    "environment_id",
    "name",
    "state",
    "settings",
    "execution",
    "triggers",
    "generate_docs",
    "run_generate_sources",
    "run_compare_changes",
    "run_lint",
    "errors_on_lint_failure",
    "lifecycle_webhooks",
)
"""Fields the job request schema requires."""

OPTIONAL_JOB_FIELDS = (
    "id",
    "description",
    "dbt_version",
    "deferring_job_definition_id",
    "deferring_environment_id",
    "execute_steps",
    "schedule",
    "job_type",
    "triggers_on_draft_pr",
    "compare_changes_flags",
    "cost_optimization_features",
    "job_completion_trigger_condition",
)
"""Other writable fields; everything else in a GET response is read-only."""

WRITABLE_JOB_FIELDS = frozenset(REQUIRED_JOB_FIELDS + OPTIONAL_JOB_FIELDS)
TRIGGER_FIELDS = ("github_webhook", "git_provider_webhook", "schedule", "on_merge")


def _schedule_payload(schedule: dict[str, Any]) -> dict[str, Any]:
    date = {k: v for k, v in dict(schedule.get("date") or {}).items() if v is not None}
    time = {k: v for k, v in dict(schedule.get("time") or {}).items() if v is not None}
    # Each type carries only its own keys (terraform job.go builds them the same way).
    if date.get("type") in ("every_day",):
        date.pop("days", None)
        date.pop("cron", None)
    elif date.get("type") == "days_of_week":
        date.pop("cron", None)
    if time.get("type") == "at_exact_hours":
        time.pop("interval", None)
    elif time.get("type") == "every_hour":
        time.pop("hours", None)
    out: dict[str, Any] = {}
    if schedule.get("cron") is not None:
        out["cron"] = schedule["cron"]
    if date:
        out["date"] = date
    if time:
        out["time"] = time
    return out


def job_update_payload(job: Job | dict[str, Any]) -> dict[str, Any]:
    """Build the POST /jobs/{id}/ body from a typed job or a job dict as GET returned it.

    Raises:
        DbtCloudBadRequestError: the job has no id, lacks a required field, or has state 2.
    """
    source = job.model_dump(mode="json", by_alias=True) if isinstance(job, Job) else dict(job)
    if not source.get("id"):
        raise DbtCloudBadRequestError("job update needs the job's 'id'; GET the job first and edit that")
    missing = [f for f in REQUIRED_JOB_FIELDS if source.get(f) is None]
    if missing:
        raise DbtCloudBadRequestError(
            f"job {source['id']} update lacks required field(s) {', '.join(missing)}; "
            "build it from the full GET /jobs/{id}/ response"
        )
    if int(source["state"]) == JobState.DELETED:
        raise DbtCloudBadRequestError(
            f"job {source['id']} update has state=2, which deletes the job; to pause a job set its "
            "triggers (schedule, webhooks, on_merge) to false instead"
        )
    payload = {k: v for k, v in source.items() if k in WRITABLE_JOB_FIELDS}
    triggers = dict(source["triggers"])
    payload["triggers"] = {k: bool(triggers.get(k, False)) for k in TRIGGER_FIELDS}
    if isinstance(source.get("schedule"), dict):
        payload["schedule"] = _schedule_payload(source["schedule"])
    return payload
