"""Typed migration plan: what `translate` decides and `apply`/`emit` carry out. Data only, no callables.

These types are separate from the dbt Cloud API models (what the API returns) and from Prefect's own types.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dbt2prefect.params import ApiParameters, RunParameters
from dbt2prefect.reasons import ReasonCode


class Severity(StrEnum):
    """How much a finding matters: a blocker stops `plan` (exit 1) until acknowledged in tenant settings."""

    BLOCKER = "blocker"
    WARNING = "warning"
    INFO = "info"


class _PlanModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True)


class Finding(_PlanModel):
    """Something about a job that has no Prefect equivalent, or that a person must check."""

    reason_code: ReasonCode
    severity: Severity
    job_id: int
    job_name: str
    message: str
    manual_step: str

    @property
    def key(self) -> str:
        """The form tenant settings use to acknowledge it: '<reason_code>:<job_id>'."""
        return f"{self.reason_code}:{self.job_id}"


class ScheduleProof(_PlanModel):
    """The fire-time comparison behind a schedule: `checked` instants from `start`, equal or not."""

    start: str
    checked: int
    equivalent: bool
    first_difference: str | None = None


class PlannedSchedule(_PlanModel):
    """One Prefect deployment schedule for one dbt Cloud job (slug `job-<id>--<job name>`, see `dbt2prefect.names`)."""

    slug: str
    job_id: int
    job_name: str
    cron: str | None = None
    rrule: str | None = None
    day_or: bool = True
    timezone: str = "UTC"
    active: bool
    run_parameters: ApiParameters = Field(alias="parameters")
    description: str
    source_cron: str
    proof: ScheduleProof
    profile_block: str | None = Field(
        default=None, description="The Prefect block whose connection the schedule's runs use (the job's environment)."
    )

    @property
    def parameters(self) -> dict[str, Any]:
        """`run_parameters` as Prefect stores them (what the server's copy is compared with)."""
        return self.run_parameters.to_api()


class PlannedTrigger(_PlanModel):
    """A chained dbt Cloud job (`job_completion_trigger_condition`) as a trigger of the deployment.

    It runs the deployment with the downstream job's parameters when a run of the upstream job (tag
    `dbt-cloud-job-<id>`) enters one of `states`.
    """

    name: str
    job_id: int
    job_name: str
    upstream_job_id: int
    upstream_job_name: str
    states: list[str]
    run_parameters: ApiParameters = Field(alias="parameters")

    @property
    def parameters(self) -> dict[str, Any]:
        """`run_parameters` as Prefect stores them (what the server's copy is compared with)."""
        return self.run_parameters.to_api()


class PlannedNotification(_PlanModel):
    """A dbt Cloud notification setting's outcomes for one job, as a Prefect automation on the job's runs.

    It sends through `block` (a notification block, `<block-type-slug>/<block-name>`) when a run of the job
    (named `job-<id> ...`) on the deployment enters one of `states`, or emits `events` (a run with warnings).
    """

    name: str
    job_id: int
    job_name: str
    notification_id: int
    destination: str = Field(description="The destination as `[tenant.notifications]` names it, e.g. 'slack:#x'.")
    outcomes: list[str] = Field(description="dbt Cloud's outcomes: on_success, on_failure, on_warning, on_cancel.")
    states: list[str]
    events: list[str] = Field(default_factory=list)
    block: str
    switch_job_id: int = Field(
        description="The job whose cutover turns it on: the job, or for a job that only runs chained, its upstream."
    )


class PlannedCiStep(_PlanModel):
    """One dbt command of a CI or merge job, as the workflow runs it."""

    line: str = Field(description="The job's own command line, with dbt Cloud's deferral (`--defer --state`) added.")
    checkbox: bool = Field(
        default=False,
        description="dbt Cloud's 'generate docs' or 'source freshness' checkbox: its failure does not fail the run.",
    )


class PlannedCiJob(_PlanModel):
    """A dbt Cloud CI job (pull requests) or merge job (pushes to the branch it watches) as a job of the
    repository's GitHub Actions workflow: the job's own commands, deferring to the latest successful run on
    `state_target` (`--defer --state`, nothing narrowed)."""

    job_id: int
    job_name: str
    event: Literal["pull_request", "push"]
    branch: str = Field(description="The pull requests' base branch (CI), or the branch whose pushes run it (merge).")
    draft_pr: bool = Field(default=False, description="Run on draft pull requests too (`triggers_on_draft_pr`).")
    target: str = Field(description="The dbt target name the job's runs use (target.name).")
    connection: str = Field(description="The tenant target whose connection the job uses (its secrets' prefix).")
    state_target: str | None = Field(
        description="The tenant target whose latest successful run's manifest is the state; None: no deferral."
    )
    steps: list[PlannedCiStep]
    threads: int = 1
    timeout_seconds: int = 0
    env_vars: dict[str, str] = Field(default_factory=dict, description="Non-secret environment variables.")
    secret_env_vars: dict[str, str] = Field(
        default_factory=dict, description="Secret environment variable -> the repository secret holding its value."
    )
    account_id: int = 0
    project_id: int = 0
    environment_id: int = 0
    schema_isolated: bool = Field(
        default=True,
        description="False when the project's generate_schema_name puts some nodes outside the pull request's "
        "schema: its pull requests then run one at a time (a finding says so).",
    )


JobStatus = Literal["scheduled", "chained", "on_demand", "ci_workflow", "not_migrated", "blocked"]


class PlannedJob(_PlanModel):
    """Every job of the inventory, with what became of it (a schedule, or findings only)."""

    job_id: int
    job_name: str
    status: JobStatus
    run_parameters: ApiParameters | None = Field(default=None, alias="parameters")
    schedule_slug: str | None = None
    trigger_name: str | None = None

    @property
    def parameters(self) -> dict[str, Any] | None:
        """`run_parameters` as Prefect stores them; None for a job whose parameters did not translate."""
        return self.run_parameters.to_api() if self.run_parameters is not None else None


class MigrationPlan(_PlanModel):
    """One deployment for all of a tenant's jobs, its schedules, and the findings."""

    tenant: str
    deployment_name: str
    flow_name: str
    entrypoint: str
    work_pool: str
    deployment_parameters: ApiParameters = Field(
        default_factory=RunParameters,
        description="The deployment's default run parameters (a run started without any, e.g. by hand).",
    )
    jobs: list[PlannedJob]
    schedules: list[PlannedSchedule]
    triggers: list[PlannedTrigger] = Field(default_factory=list)
    ci_jobs: list[PlannedCiJob] = Field(default_factory=list)
    notifications: list[PlannedNotification] = Field(default_factory=list)
    findings: list[Finding]
    acknowledged: list[str] = Field(default_factory=list)

    def blocking(self) -> list[Finding]:
        """Blocker findings not acknowledged in tenant settings."""
        done = set(self.acknowledged)
        return [f for f in self.findings if f.severity == Severity.BLOCKER and f.key not in done]

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with a `blocking` list (keys) for machines."""
        data = self.model_dump(mode="json")
        data["blocking"] = [f.key for f in self.blocking()]
        return data
