"""The API contract the sandbox enforces, written down independently of the client (so tests check the client
against the contract, not against itself).

Sources: dbt Cloud Administrative API notes (shared/dbt-cloud-api/NOTES.md §2-§4).
"""

from __future__ import annotations

import json
from typing import Any

MAX_LIMIT = 100

JOB_REQUIRED = (
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
JOB_OPTIONAL = (
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
    "lifecycle_webhooks_url",
)
TRIGGERS = ("github_webhook", "git_provider_webhook", "schedule", "on_merge")
DATE_TYPES = ("every_day", "days_of_week", "custom_cron", "interval_cron")
TIME_TYPES = ("every_hour", "at_exact_hours")
JOB_ORDER_FIELDS = ("id", "name", "created_at", "updated_at")
RUN_ORDER_FIELDS = ("id", "created_at", "finished_at")

STATUS_HUMANIZED = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}


class ApiError(Exception):
    """A request the sandbox rejects; becomes `{status: {code, is_success: false, user_message}, data: null}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def envelope(data: Any, extra: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    """The `{status, data, extra}` envelope of every JSON response."""
    body: dict[str, Any] = {
        "status": {"code": code, "is_success": code < 400, "user_message": "Success!", "developer_message": ""},
        "data": data,
    }
    if extra is not None:
        body["extra"] = extra
    return body


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "status": {"code": status, "is_success": False, "user_message": message, "developer_message": ""},
        "data": None,
    }


def int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"Query parameter {name}={value!r} must be an integer.") from None


def list_param(params: dict[str, str], name: str) -> list[Any] | None:
    """JSON-style array parameters (`status__in=[10,20]`); a comma list also works."""
    value = params.get(name)
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(parsed, list):
        parsed = [parsed]
    return parsed


def page_params(params: dict[str, str]) -> tuple[int, int]:
    limit = int_param(params, "limit", MAX_LIMIT)
    offset = int_param(params, "offset", 0)
    assert limit is not None and offset is not None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, f"The limit parameter must be between 1 and {MAX_LIMIT}; got {limit}.")
    if offset < 0:
        raise ApiError(400, "The offset parameter must not be negative.")
    return limit, offset


def order_key(value: str | None, allowed: tuple[str, ...], default: str) -> tuple[str, bool]:
    order = value or default
    field = order.lstrip("-")
    if field not in allowed:
        raise ApiError(400, f"order_by must be one of {', '.join(allowed)} (optionally with '-'); got {order!r}.")
    return field, order.startswith("-")


def _check_schedule(schedule: Any, scheduled: bool) -> None:
    if not isinstance(schedule, dict):
        raise ApiError(400, "schedule must be an object with cron, date and time.")
    date, time = schedule.get("date"), schedule.get("time")
    if not isinstance(date, dict) or date.get("type") not in DATE_TYPES:
        raise ApiError(400, f"schedule.date.type must be one of {', '.join(DATE_TYPES)}.")
    if not isinstance(time, dict) or time.get("type") not in TIME_TYPES:
        raise ApiError(400, f"schedule.time.type must be one of {', '.join(TIME_TYPES)}.")
    if date["type"] in ("custom_cron", "interval_cron") and not date.get("cron"):
        raise ApiError(400, f"schedule.date.cron is required for date type {date['type']}.")
    if date["type"] == "days_of_week" and not date.get("days"):
        raise ApiError(400, "schedule.date.days is required for date type days_of_week.")
    if time["type"] == "at_exact_hours" and not time.get("hours"):
        raise ApiError(400, "schedule.time.hours is required for time type at_exact_hours.")
    for key in ("date", "time"):
        nulls = [k for k, v in schedule[key].items() if v is None]
        if nulls:
            raise ApiError(400, f"schedule.{key}.{nulls[0]}: None is not of type 'integer', 'array', 'string'.")
    cron = schedule.get("cron")
    if scheduled and (not isinstance(cron, str) or len(cron.split()) != 5):
        raise ApiError(400, "schedule.cron must be a five-field cron expression when triggers.schedule is true.")


def validate_job_update(job_id: int, body: Any, account_id: int) -> dict[str, Any]:
    """Check a POST /jobs/{id}/ body like the API does; return it unchanged when valid."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object with the full job definition.")
    allowed = set(JOB_REQUIRED) | set(JOB_OPTIONAL)
    extra = sorted(set(body) - allowed)
    if extra:
        raise ApiError(400, f"Additional properties are not allowed ({extra[0]!r} was unexpected)")
    missing = [k for k in JOB_REQUIRED if k not in body]
    if missing:
        raise ApiError(400, f"{missing[0]!r} is a required property")
    if "id" in body and body["id"] != job_id:
        raise ApiError(400, f"Body id {body['id']} does not match job {job_id} in the URL.")
    if body["account_id"] != account_id:
        raise ApiError(400, f"account_id {body['account_id']} does not match account {account_id}.")
    if body["state"] != 1:
        raise ApiError(400, "state must be 1 in an update; delete a job with DELETE (state 2 is a deletion).")
    triggers = body["triggers"]
    if not isinstance(triggers, dict):
        raise ApiError(400, "triggers must be an object.")
    unknown = sorted(set(triggers) - set(TRIGGERS))
    if unknown:
        raise ApiError(400, f"Additional properties are not allowed ({unknown[0]!r} was unexpected)")
    if not all(isinstance(triggers.get(k, False), bool) for k in TRIGGERS):
        raise ApiError(400, "triggers values must be booleans.")
    settings = body["settings"]
    if not isinstance(settings, dict) or not isinstance(settings.get("threads"), int) or settings["threads"] < 1:
        raise ApiError(400, "settings.threads must be a positive integer.")
    if not isinstance(settings.get("target_name"), str) or not settings["target_name"]:
        raise ApiError(400, "settings.target_name must be a non-empty string.")
    steps = body.get("execute_steps", [])
    if not isinstance(steps, list) or not all(isinstance(s, str) and s.split()[:1] == ["dbt"] for s in steps):
        raise ApiError(400, "execute_steps must be a list of commands that start with 'dbt'.")
    if "schedule" in body:
        _check_schedule(body["schedule"], bool(triggers.get("schedule")))
    elif triggers.get("schedule"):
        raise ApiError(400, "schedule is required when triggers.schedule is true.")
    chain = body.get("job_completion_trigger_condition")
    if chain is not None:
        condition = chain.get("condition") if isinstance(chain, dict) else None
        if not isinstance(condition, dict) or not isinstance(condition.get("job_id"), int):
            raise ApiError(400, "job_completion_trigger_condition must be null or {condition: {job_id, ...}}.")
    return body
