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
JOB_OPTIONAL_DEFAULTS: dict[str, Any] = {
    "description": "",
    "dbt_version": None,
    "deferring_job_definition_id": None,
    "deferring_environment_id": None,
    "execute_steps": [],
    "schedule": {"cron": "0 0 * * *", "date": {"type": "every_day"}, "time": {"type": "every_hour", "interval": 1}},
    "job_type": None,
    "triggers_on_draft_pr": False,
    "compare_changes_flags": "--select state:modified",
    "cost_optimization_features": [],
    "generate_sources": False,
}
"""Writable fields a body may leave out, with the spec's defaults (what a resetting server would store)."""
JOB_READ_ONLY = (
    "id",
    "job_completion_trigger_condition",
    "lifecycle_webhooks_url",
    "created_at",
    "updated_at",
    "next_run",
    "next_run_humanized",
    "cron_humanized",
    "raw_dbt_version",
    "run_failure_count",
    "is_deferrable",
    "deactivated",
    "deactivation_reason",
    "is_system",
)
"""Read-only in the spec. The sandbox rejects them in an update (stricter than the live API may be), so a
client that sends one is caught here rather than trusted to the live API's silence."""
TRIGGERS = ("github_webhook", "git_provider_webhook", "schedule", "on_merge")
DATE_TYPES = ("every_day", "days_of_week", "custom_cron", "interval_cron")
TIME_TYPES = ("every_hour", "at_exact_hours")
JOB_TYPES = ("ci", "scheduled", "other", "merge", "exposure_sync", "adaptive", "hybrid")
COST_OPTIMIZATION_FEATURES = ("state_aware_orchestration", "efficient_testing", "dbt_state")
NULLABLE = ("dbt_version", "deferring_job_definition_id", "deferring_environment_id", "job_type")
JOB_ORDER_FIELDS = ("id", "name", "created_at", "updated_at")
RUN_ORDER_FIELDS = ("id", "created_at", "finished_at")
OMITTED_FIELD_MODES = ("keep", "reset")
"""What an update does with writable fields the body leaves out. Not documented for v2 (the v3 environment
update resets them): the sandbox does either, and the cutover/rollback tests run both ways."""

STATUS_HUMANIZED = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}

INVALID_REQUEST = "The request was invalid. Please double check the provided data and try again."
"""The live API's generic `status.user_message` for a validation error; the reason goes in `data`."""


class ApiError(Exception):
    """A request the sandbox rejects.

    With `field`, the body is a validation error as the live API shapes it: the generic text in
    `status.user_message` and `data: {field: reason}`. Without, `user_message` carries the message, `data` null.
    """

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def envelope(data: Any, extra: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    """The `{status, data, extra}` envelope of every JSON response."""
    body: dict[str, Any] = {
        "status": {"code": code, "is_success": code < 400, "user_message": "Success!", "developer_message": ""},
        "data": data,
    }
    if extra is not None:
        body["extra"] = extra
    return body


def error_body(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    """The body of a rejection (see `ApiError`)."""
    user_message = INVALID_REQUEST if field is not None else message
    return {
        "status": {"code": status, "is_success": False, "user_message": user_message, "developer_message": ""},
        "data": {field: message} if field is not None else None,
    }


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, message, field)


def int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _invalid(name, f"{value!r} is not of type 'integer'") from None


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
        raise _invalid("limit", f"must be between 1 and {MAX_LIMIT}; got {limit}")
    if offset < 0:
        raise _invalid("offset", "must not be negative")
    return limit, offset


def order_key(value: str | None, allowed: tuple[str, ...], default: str) -> tuple[str, bool]:
    order = value or default
    field = order.lstrip("-")
    if field not in allowed:
        raise _invalid("order_by", f"must be one of {', '.join(allowed)} (optionally with '-'); got {order!r}")
    return field, order.startswith("-")


def _check_schedule(schedule: Any, scheduled: bool) -> None:
    if not isinstance(schedule, dict):
        raise _invalid("schedule", "must be an object with cron, date and time")
    date, time = schedule.get("date"), schedule.get("time")
    if not isinstance(date, dict) or date.get("type") not in DATE_TYPES:
        raise _invalid("schedule", f"date.type must be one of {', '.join(DATE_TYPES)}")
    if not isinstance(time, dict) or time.get("type") not in TIME_TYPES:
        raise _invalid("schedule", f"time.type must be one of {', '.join(TIME_TYPES)}")
    for key in ("date", "time"):
        nulls = [k for k, v in schedule[key].items() if v is None]
        if nulls:
            raise _invalid("schedule", f"{key}.{nulls[0]}: None is not of type 'integer', 'array', 'string'")
    if date["type"] in ("custom_cron", "interval_cron") and not date.get("cron"):
        raise _invalid("schedule", f"date.cron is required for date type {date['type']}")
    if date["type"] == "days_of_week" and not date.get("days"):
        raise _invalid("schedule", "date.days is required for date type days_of_week")
    if time["type"] == "at_exact_hours" and not time.get("hours"):
        raise _invalid("schedule", "time.hours is required for time type at_exact_hours")
    cron = schedule.get("cron")
    if scheduled and (not isinstance(cron, str) or len(cron.split()) != 5):
        raise _invalid("schedule", "cron must be a five-field cron expression when triggers.schedule is true")


def _check_types(body: dict[str, Any]) -> None:
    booleans = [k for k in JOB_REQUIRED if k.startswith(("generate", "run_", "errors", "lifecycle"))]
    booleans += ["triggers_on_draft_pr", "generate_sources"]
    for key in booleans:
        if key in body and not isinstance(body[key], bool):
            raise _invalid(key, f"{body[key]!r} is not of type 'boolean'")
    for key in ("name", "description", "compare_changes_flags"):
        if key in body and not isinstance(body[key], str):
            raise _invalid(key, f"{body[key]!r} is not of type 'string'")
    for key in set(body) & set(JOB_OPTIONAL_DEFAULTS):
        if body[key] is None and key not in NULLABLE:
            raise _invalid(key, "None is not of type 'string', 'integer', 'boolean', 'array', 'object'")
    if body.get("job_type") is not None and body["job_type"] not in JOB_TYPES:
        raise _invalid("job_type", f"{body['job_type']!r} is not one of {', '.join(JOB_TYPES)}")
    features = body.get("cost_optimization_features", [])
    if not isinstance(features, list) or not all(f in COST_OPTIMIZATION_FEATURES for f in features):
        raise _invalid("cost_optimization_features", f"must be a list of {', '.join(COST_OPTIMIZATION_FEATURES)}")
    execution = body["execution"]
    if not isinstance(execution, dict) or not isinstance(execution.get("timeout_seconds", 0), int):
        raise _invalid("execution", "timeout_seconds must be an integer")


def validate_job_update(job_id: int, body: Any, account_id: int) -> dict[str, Any]:
    """Check a POST /jobs/{id}/ body like the API does; return it unchanged when valid.

    A body with `state: 2` is valid: the live API treats it as a deletion (the caller soft-deletes the job).
    """
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object with the full job definition.")
    allowed = set(JOB_REQUIRED) | set(JOB_OPTIONAL_DEFAULTS)
    extra = sorted(set(body) - allowed)
    if extra:
        why = "is read-only" if extra[0] in JOB_READ_ONLY else "is not a job field"
        raise _invalid(extra[0], f"Additional properties are not allowed ({extra[0]!r} was unexpected): it {why}")
    missing = [k for k in JOB_REQUIRED if body.get(k) is None]
    if missing:
        raise _invalid(missing[0], f"{missing[0]!r} is a required property")
    if body["account_id"] != account_id:
        raise _invalid("account_id", f"{body['account_id']} does not match account {account_id}")
    if body["state"] not in (1, 2):
        raise _invalid("state", f"{body['state']!r} is not one of 1, 2")
    triggers = body["triggers"]
    if not isinstance(triggers, dict):
        raise _invalid("triggers", "must be an object")
    unknown = sorted(set(triggers) - set(TRIGGERS))
    if unknown:
        raise _invalid("triggers", f"Additional properties are not allowed ({unknown[0]!r} was unexpected)")
    absent = [k for k in TRIGGERS if k not in triggers]
    if absent:
        raise _invalid("triggers", f"{absent[0]!r} is a required property")
    wrong = [k for k in TRIGGERS if not isinstance(triggers[k], bool)]
    if wrong:
        raise _invalid("triggers", f"{wrong[0]}: {triggers[wrong[0]]!r} is not of type 'boolean'")
    settings = body["settings"]
    if not isinstance(settings, dict) or not isinstance(settings.get("threads"), int) or settings["threads"] < 1:
        raise _invalid("settings", "threads must be a positive integer")
    if not isinstance(settings.get("target_name"), str) or not settings["target_name"]:
        raise _invalid("settings", "target_name must be a non-empty string")
    _check_types(body)
    steps = body.get("execute_steps", [])
    if not isinstance(steps, list) or not all(isinstance(s, str) and s.split()[:1] == ["dbt"] for s in steps):
        raise _invalid("execute_steps", "must be a list of commands that start with 'dbt'")
    if "schedule" in body:
        _check_schedule(body["schedule"], triggers["schedule"])
    elif triggers["schedule"]:
        raise _invalid("schedule", "is required when triggers.schedule is true")
    return body
