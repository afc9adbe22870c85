"""What cutover and rollback share: the services they act on, hook points, and their typed results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.models import Job
from migration.dbt_cloud.payloads import job_update_payload
from migration.ledger import Ledger, LedgerState, Verification, utcnow
from migration.prefect_switch import PrefectSchedules, PrefectTriggers

Checkpoint = Callable[[int, str], None]
"""Called as `checkpoint(job_id, step)` before each step ("ledger", "dbt_cloud", "prefect", "verify").

Production passes nothing; tests raise or kill the process here to prove every step can be resumed.
"""


def _no_checkpoint(job_id: int, step: str) -> None:
    return None


@dataclass
class SwitchContext:
    """The services one cutover or rollback acts on.

    Attributes:
        tenant: tenant name (ledger folder).
        dbt_cloud: client of the tenant's dbt Cloud account.
        prefect: the deployment's schedules, over the command's one Prefect gateway (`PrefectSchedules.gateway`).
        ledger: the tenant's ledger.
        by: who runs it (recorded in every ledger entry).
        checkpoint: hook called before each step.
        clock: the time source of ledger records.
    """

    tenant: str
    dbt_cloud: DbtCloudClient
    prefect: PrefectSchedules
    ledger: Ledger
    by: str
    checkpoint: Checkpoint = field(default=_no_checkpoint)
    clock: Callable[[], datetime] = field(default=utcnow)

    @property
    def triggers(self) -> PrefectTriggers:
        """The deployment's triggers and notification automations, through the same gateway as `prefect`."""
        return PrefectTriggers(self.prefect.deployment, self.prefect.gateway)


Action = Literal[
    "cut over",
    "already cut over",
    "rolled back",
    "already rolled back",
    "nothing to roll back",
    "would cut over",
    "would roll back",
]


class JobOutcome(BaseModel):
    """What happened to one job."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    job_name: str
    action: Action
    state: LedgerState
    verification: Verification | None = None
    warnings: list[str] = Field(default_factory=list)
    changes: list[str] = Field(default_factory=list)
    """A dry run's switches, in the order they would happen (e.g. 'dbt Cloud schedule trigger: on -> off')."""


class SwitchReport(BaseModel):
    """The result of one cutover or rollback command."""

    model_config = ConfigDict(frozen=True)

    operation: Literal["cutover", "rollback"]
    jobs: list[JobOutcome]
    warnings: list[str] = Field(default_factory=list)
    dry_run: bool = False
    """True when nothing was changed: each job's `changes` say what the command would do."""

    @property
    def ok(self) -> bool:
        """True when every job's read-back matched (or nothing had to change)."""
        return all(j.verification is None or j.verification.ok for j in self.jobs)


def writable_fields(job: dict[str, Any]) -> dict[str, Any]:
    """The fields of a job an update can set, as the update body would carry them (for equality checks)."""
    return job_update_payload(job)


def field_differences(live: dict[str, Any], original: dict[str, Any]) -> list[str]:
    """Names of writable fields whose values differ between two job dicts (nulls read as their defaults).

    Every writable field counts, `job_type` included: dbt Cloud flips it scheduled ↔ other with the schedule
    trigger during cutover, and restoring the recorded triggers and job_type must flip it back. A field the
    original does not carry at all (a job_type the API did not send) was never known, so it is not compared.
    """
    a, b = writable_fields(live), writable_fields(original)
    return sorted(k for k in b if a.get(k) != b[k])


def schedule_on(job: dict[str, Any]) -> bool:
    """True when the job's dbt Cloud schedule trigger is on."""
    triggers = job.get("triggers") or {}
    return bool(triggers.get("schedule"))


def chained_children(jobs: list[Job], job_id: int) -> list[Job]:
    """Active jobs that dbt Cloud starts when `job_id` completes (they keep firing until their condition is cleared)."""
    return [
        j
        for j in jobs
        if not j.is_deleted
        and j.job_completion_trigger_condition is not None
        and j.job_completion_trigger_condition.condition.job_id == job_id
    ]
