"""Typed, frozen views of dbt Cloud Administrative API objects.

Built with `from_api(dict)`; unknown fields are ignored because the API adds fields without notice.
The spec marks no field nullable, yet its own defaults hold nulls (`triggers.git_provider_webhook: null`), so a
null anywhere means "not set": the field takes its default, exactly as if the key were missing. Only the ids
that identify an object are required.
These types describe what the API returns; plans and emitted files have their own types.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.run_env import SECRET_ENV_PREFIX


def _api_id(value: Any) -> Any:
    """An object id as one int, however the JSON spelled it: 123 and "123" are the same job.

    dbt Cloud's ids are positive integers; anything else (true, 1.5, "1_000", "-3", "12a") is refused here, so
    that no later comparison sees two spellings of one id.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a dbt Cloud id: a positive whole number")
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ValueError(f"must be a dbt Cloud id (a positive whole number), not {value!r}")
        value = int(value)
    if value < 1:
        raise ValueError(f"must be a dbt Cloud id (a positive whole number), not {value}")
    return value


ApiId = Annotated[int, BeforeValidator(_api_id)]
"""The id of a dbt Cloud object (job, account, project, environment, run, notification), normalised to an int."""


class _ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_set(cls, data: Any) -> Any:
        # A null takes the field's default, as a missing key does (required ids then fail the same way).
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class JobState(IntEnum):
    """dbt Cloud job state: DELETE is a soft delete that sets state 2."""

    ACTIVE = 1
    DELETED = 2


class ScheduleDate(_ApiModel):
    type: str = "every_day"
    days: list[int] | None = None
    cron: str | None = None


class ScheduleTime(_ApiModel):
    type: str = "every_hour"
    interval: int | None = None
    hours: list[int] | None = None


class JobSchedule(_ApiModel):
    cron: str | None = None
    date: ScheduleDate = ScheduleDate()
    time: ScheduleTime = ScheduleTime()


class JobTriggers(_ApiModel):
    github_webhook: bool = False
    git_provider_webhook: bool = False
    schedule: bool = False
    on_merge: bool = False
    custom_branch_only: bool | None = None


class JobSettings(_ApiModel):
    threads: int = 1
    target_name: str = "default"


class JobExecution(_ApiModel):
    timeout_seconds: int = 0


class CompletionCondition(_ApiModel):
    job_id: ApiId
    project_id: ApiId | None = None
    statuses: list[int] = Field(default_factory=list)


class JobCompletionTrigger(_ApiModel):
    condition: CompletionCondition


def _usable_chain(value: Any) -> Any:
    """A chain condition without an upstream job id chains nothing: treat it as not set."""
    if isinstance(value, dict):
        condition = value.get("condition")
        if not isinstance(condition, dict) or condition.get("job_id") is None:
            return None
    return value


class Job(_ApiModel):
    """A dbt Cloud job definition (HumanReadableJobDefinitionResponse)."""

    id: ApiId
    account_id: ApiId
    project_id: ApiId
    environment_id: ApiId
    name: str = ""
    description: str = ""
    dbt_version: str | None = None
    execute_steps: list[str] = Field(default_factory=list)
    execution: JobExecution = JobExecution()
    settings: JobSettings = JobSettings()
    triggers: JobTriggers = JobTriggers()
    schedule: JobSchedule = JobSchedule()
    state: JobState = JobState.ACTIVE
    generate_docs: bool = False
    run_generate_sources: bool = False
    generate_sources: bool = False
    deferring_job_definition_id: ApiId | None = None
    deferring_environment_id: ApiId | None = None
    job_type: str | None = None
    triggers_on_draft_pr: bool = False
    run_compare_changes: bool = False
    compare_changes_flags: str = "--select state:modified"
    run_lint: bool = False
    errors_on_lint_failure: bool = True
    lifecycle_webhooks: bool = False
    lifecycle_webhooks_url: str | None = None
    job_completion_trigger_condition: JobCompletionTrigger | None = None
    cost_optimization_features: list[str] = Field(default_factory=list)
    custom_environment_variables: list[dict[str, Any]] | None = None
    cron_humanized: str | None = None
    deactivated: bool = False
    deactivation_reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("execute_steps", "cost_optimization_features", mode="before")
    @classmethod
    def _no_null_items(cls, value: Any) -> Any:
        return [item for item in value if item is not None] if isinstance(value, list) else value

    @field_validator("job_completion_trigger_condition", mode="before")
    @classmethod
    def _chain(cls, value: Any) -> Any:
        return _usable_chain(value)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Job:
        """Build from one element of the API's `data`."""
        return cls.model_validate(data)

    @property
    def is_deleted(self) -> bool:
        return self.state == JobState.DELETED


class EnvironmentCredentials(_ApiModel):
    target_name: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    # Postgres and Redshift credentials name the schema `default_schema`.
    default_schema: str | None = None
    threads: int | None = None


class Environment(_ApiModel):
    """A dbt Cloud environment (v3)."""

    id: ApiId
    account_id: ApiId | None = None
    project_id: ApiId | None = None
    name: str = ""
    type: str | None = None
    deployment_type: str | None = None
    dbt_version: str | None = None
    custom_branch: str | None = None
    use_custom_branch: bool = False
    credentials: EnvironmentCredentials | None = None
    state: int | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Environment:
        return cls.model_validate(data)


class RunStep(_ApiModel):
    """One step of a run. The run's embedded step schema has no `id` (only the standalone step response has)."""

    id: int | None = None
    index: int
    name: str = ""
    status: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: str | None = None
    logs: str | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RunStep:
        return cls.model_validate(data)


class Run(_ApiModel):
    """A dbt Cloud run. Run timestamps use a space instead of `T`; fromisoformat (3.11+) reads both."""

    id: ApiId
    account_id: ApiId | None = None
    job_definition_id: ApiId | None = None
    environment_id: ApiId | None = None
    project_id: ApiId | None = None
    status: RunStatus
    status_message: str | None = None
    git_sha: str | None = None
    git_branch: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: str | None = None
    has_docs_generated: bool = False
    has_sources_generated: bool = False
    artifacts_saved: bool = False
    run_steps: list[RunStep] = Field(default_factory=list)

    @field_validator("created_at", "started_at", "finished_at", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any) -> Any:
        if isinstance(value, str) and value:
            return datetime.fromisoformat(value)
        return value or None

    @field_validator("run_steps", mode="before")
    @classmethod
    def _no_null_steps(cls, value: Any) -> Any:
        return [item for item in value if item is not None] if isinstance(value, list) else value

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Run:
        return cls.model_validate(data)

    @property
    def is_success(self) -> bool:
        return self.status == RunStatus.SUCCESS


class NotificationType(IntEnum):
    """dbt Cloud notification setting types (v2 `notifications/`)."""

    INTERNAL_EMAIL = 1
    SLACK = 2
    WEBHOOK = 3
    EXTERNAL_EMAIL = 4
    SLACK_V2 = 5


class Notification(_ApiModel):
    """One notification setting: who is told, and the jobs whose runs tell them, per outcome."""

    id: ApiId
    user_id: int | None = None
    type: int
    state: int = 1
    external_email: str | None = None
    slack_channel_id: str | None = None
    slack_channel_name: str | None = None
    on_success: list[ApiId] = Field(default_factory=list)
    on_failure: list[ApiId] = Field(default_factory=list)
    on_warning: list[ApiId] = Field(default_factory=list)
    on_cancel: list[ApiId] = Field(default_factory=list)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Notification:
        return cls.model_validate(data)


SECRET_PREFIX = SECRET_ENV_PREFIX
"""Environment variables whose names start with this are secrets: the API masks their values."""


class EnvVarValue(_ApiModel):
    id: int | None = None
    value: str = ""


class EnvironmentVariables(_ApiModel):
    """The v3 `environment-variables/environment/` (or `.../job/`) answer: each variable's value per scope.

    Scopes are `project` (the default), an environment's NAME, and `job` (a job's override).
    """

    environments: list[str] = Field(default_factory=list)
    variables: dict[str, dict[str, EnvVarValue]] = Field(default_factory=dict)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> EnvironmentVariables:
        return cls.model_validate(data)

    def resolve(self, environment: str | None, job: EnvironmentVariables | None = None) -> dict[str, str]:
        """The values a run of a job in `environment` gets: project default < environment < job override."""
        return {name: value for name, (_scope, value) in self.resolve_scopes(environment, job).items()}

    def resolve_scopes(
        self, environment: str | None, job: EnvironmentVariables | None = None
    ) -> dict[str, tuple[str, str]]:
        """As `resolve`, with the scope each value comes from (`project`, the environment's name, or `job`).

        A secret's value is masked, so the scope is what names it: it says which value dbt Cloud gives the run.
        """
        resolved: dict[str, tuple[str, str]] = {}
        for source in (self, job) if job is not None else (self,):
            for name, scopes in source.variables.items():
                for scope in ("project", environment, "job"):
                    if scope is not None and scope in scopes:
                        resolved[name] = (scope, scopes[scope].value)
        return dict(sorted(resolved.items()))
