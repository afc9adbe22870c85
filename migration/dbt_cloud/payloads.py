"""Request bodies the API accepts: a job update is the full set of writable fields, and nothing else.

Rules (NOTES.md §4 and "Contract facts (2026-12)"): there is no PATCH, and whether the POST keeps or resets
omitted fields is not documented, so every writable field is sent (`generate_sources` included); read-only
fields are never sent (`id` travels in the URL; `job_completion_trigger_condition`, `lifecycle_webhooks_url`,
timestamps and the like are the server's); never `triggers.custom_branch_only` (a 400 since it was
deprecated); never `state=2` (that deletes the job); `schedule` with null keys dropped and only the keys its
date/time types use. The body is built from the typed `Job`, so a null the API returned is sent as the
field's documented default, never as a null the request schema does not allow.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

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
    "generate_sources",
)
"""Other writable fields; everything else in a GET response is read-only."""

NULLABLE_JOB_FIELDS = ("dbt_version", "deferring_job_definition_id", "deferring_environment_id")
"""Writable fields whose null means something (inherit the environment's version, no deferral): sent as null."""

WRITABLE_JOB_FIELDS = REQUIRED_JOB_FIELDS + OPTIONAL_JOB_FIELDS
TRIGGER_FIELDS = ("github_webhook", "git_provider_webhook", "schedule", "on_merge")


def as_job(job: Job | dict[str, Any]) -> Job:
    """The typed view of a job dict as GET returned it (a `Job` is returned as is).

    Raises:
        DbtCloudBadRequestError: an identifying field (id, account, project, environment) is missing.
    """
    if isinstance(job, Job):
        return job
    try:
        return Job.from_api(dict(job))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DbtCloudBadRequestError(
            f"job {job.get('id')} update: field {field!r} {first['msg'].lower()}; "
            "build the update from the full GET /jobs/{id}/ response"
        ) from None


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
        DbtCloudBadRequestError: an identifying field is missing, or the job has state 2.
    """
    typed = as_job(job)
    if typed.state == JobState.DELETED:
        raise DbtCloudBadRequestError(
            f"job {typed.id} update has state=2, which deletes the job; to pause a job set its "
            "triggers (schedule, webhooks, on_merge) to false instead"
        )
    source = typed.model_dump(mode="json", by_alias=True)
    payload = {
        name: source[name]
        for name in WRITABLE_JOB_FIELDS
        if source.get(name) is not None or name in NULLABLE_JOB_FIELDS
    }
    payload["triggers"] = {k: bool(source["triggers"].get(k)) for k in TRIGGER_FIELDS}
    payload["schedule"] = _schedule_payload(source["schedule"])
    return payload
