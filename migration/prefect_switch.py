"""The Prefect side of cutover: read the deployment's `job-<id>` schedules and switch them on or off.

A facade over the Prefect gateway (`dbt2prefect.prefect_gateway`) passed in: a command opens one gateway and every
read and switch goes through it. Without one, each call opens its own. Prefect 3.9.1 resets a schedule's
parameters to {} when PATCH /schedules/{id} is sent `active` without `parameters`, so every switch sends the
parameters and the slug with the flag.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from dbt2prefect.names import (
    guard_name,
    guard_trigger_job,
    is_before_start_name,
    is_notification_name,
    job_tag,
    notification_ids,
    schedule_job_id,
    trigger_jobs,
)
from dbt2prefect.prefect_gateway import PrefectGateway, gateway_or_connect
from migration.apply import deployment_triggers, match_schedules, schedule_fields
from migration.deployment import GUARD_FLOW
from migration.ledger import PrefectScheduleState
from migration.notification_automations import notification_automations, one_per_name
from migration.plan import PlannedSchedule

if TYPE_CHECKING:
    from prefect.client.schemas.objects import DeploymentSchedule
    from prefect.events.schemas.automations import Automation


class FlowRunSummary(BaseModel):
    """The latest started flow run of a schedule (or of the deployment)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    state: str | None
    start_time: datetime | None


def _state(deployment: str, deployment_id: UUID, schedule: DeploymentSchedule) -> PrefectScheduleState:
    inner = schedule.schedule
    return PrefectScheduleState(
        deployment=deployment,
        deployment_id=str(deployment_id),
        schedule_id=str(schedule.id),
        slug=schedule.slug or "",
        active=bool(schedule.active),
        parameters=dict(schedule.parameters or {}),
        cron=getattr(inner, "cron", None),
        rrule=getattr(inner, "rrule", None),
        timezone=getattr(inner, "timezone", None),
    )


class PrefectSchedules:
    """The schedules of one deployment, addressed by slug.

    Args:
        deployment: the deployment's full name, `<flow>/<deployment>` (e.g. `run_dbt_wg/dbt_wg`).
        prefect: the Prefect API (default: a client opened for each call).
    """

    def __init__(self, deployment: str, prefect: PrefectGateway | None = None) -> None:
        self.deployment = deployment
        self.gateway = prefect

    def __repr__(self) -> str:
        return f"PrefectSchedules(deployment={self.deployment!r})"

    def deployment_id(self, prefect: PrefectGateway) -> UUID | None:
        """The deployment's id on `prefect`, or None when it does not exist."""
        deployment = prefect.read_deployment(self.deployment)
        return None if deployment is None else deployment.id

    def read_all(self) -> dict[str, PrefectScheduleState] | None:
        """Every slugged schedule of the deployment, or None when the deployment does not exist."""
        with gateway_or_connect(self.gateway) as prefect:
            deployment_id = self.deployment_id(prefect)
            if deployment_id is None:
                return None
            schedules = prefect.read_schedules(deployment_id)
        return {s.slug: _state(self.deployment, deployment_id, s) for s in schedules if s.slug}

    def read(self, slug: str) -> PrefectScheduleState | None:
        """One schedule by slug, or None when it (or the deployment) does not exist. A job's slug finds the job's
        schedule under any slug of the job (`job-<id>`, or an earlier name of the job: apply had not renamed it)."""
        schedules = self.read_all() or {}
        job_id = schedule_job_id(slug)
        if slug in schedules or job_id is None:
            return schedules.get(slug)
        return self.by_job(schedules).get(job_id)

    @staticmethod
    def by_job(schedules: dict[str, PrefectScheduleState]) -> dict[int, PrefectScheduleState]:
        """The schedules of `read_all` by the job their slug names (the first slug of a job, in order)."""
        return {job_id: found[0] for job_id, found in PrefectSchedules.all_by_job(schedules).items()}

    @staticmethod
    def all_by_job(schedules: dict[str, PrefectScheduleState]) -> dict[int, list[PrefectScheduleState]]:
        """Every schedule of `read_all` by the job its slug names, in slug order (more than one: `apply` removes
        the job's second schedules)."""
        jobs: dict[int, list[PrefectScheduleState]] = {}
        for slug, state in sorted(schedules.items()):
            job_id = schedule_job_id(slug)
            if job_id is not None:
                jobs.setdefault(job_id, []).append(state)
        return jobs

    def plan_differences(self, planned: PlannedSchedule) -> list[str] | None:
        """What differs between the applied schedule and the plan (cron, timezone, parameters...).

        Returns:
            None when the deployment or the schedule is missing, else the differing fields (empty = applied).
        """
        with gateway_or_connect(self.gateway) as prefect:
            deployment_id = self.deployment_id(prefect)
            if deployment_id is None:
                return None
            matched, _ = match_schedules(prefect.read_schedules(deployment_id), [planned])
        current = matched.get(planned.slug)
        return None if current is None else schedule_fields(current, planned)

    def set_active(self, state: PrefectScheduleState, active: bool, parameters: dict[str, Any]) -> None:
        """Switch one schedule on or off, sending its parameters and slug with the flag."""
        with gateway_or_connect(self.gateway) as prefect:
            prefect.update_schedule(
                UUID(state.deployment_id),
                UUID(state.schedule_id),
                active=active,
                parameters=parameters,
                slug=state.slug,
            )

    def latest_flow_run(self, parameters: dict[str, Any] | None, scan: int = 200) -> FlowRunSummary | None:
        """The newest started flow run of the deployment whose parameters equal `parameters`.

        Args:
            parameters: the schedule's parameters; None means any run of the deployment.
            scan: how many of the newest started runs to look through.
        """
        with gateway_or_connect(self.gateway) as prefect:
            deployment_id = self.deployment_id(prefect)
            if deployment_id is None:
                return None
            runs = prefect.read_flow_runs(deployment_id, limit=scan)
        for run in runs:
            if parameters is None or dict(run.parameters or {}) == parameters:
                return FlowRunSummary(
                    id=str(run.id),
                    name=run.name,
                    state=run.state.name if run.state else None,
                    start_time=run.start_time,
                )
        return None


class PrefectTriggers:
    """The automations that follow one deployment's runs, addressed by name: the triggers that start chained
    jobs and the notification automations.

    Both are switched with a job (`switched_with`): a chained job's trigger with its upstream job (once that is
    cut over it no longer runs in dbt Cloud, so dbt Cloud no longer starts the chained job, and its Prefect runs
    must); a job's notifications with the job itself (dbt Cloud no longer runs it, so no longer notifies); and the
    job's guard trigger (`job-<id>-guard`, owned by the guard deployment) with the job too.

    Args:
        deployment: the deployment's full name, `<flow>/<deployment>`.
        prefect: the Prefect API (default: a client opened for each call).
    """

    def __init__(self, deployment: str, prefect: PrefectGateway | None = None) -> None:
        self.deployment = deployment
        self.gateway = prefect

    def __repr__(self) -> str:
        return f"PrefectTriggers(deployment={self.deployment!r})"

    def after_job(self, job_id: int) -> dict[str, bool]:
        """The deployment's triggers that run after job `job_id` (`job-*-after-job-<id>`): name -> enabled."""
        with gateway_or_connect(self.gateway) as prefect:
            deployment_id = self._deployment_id(prefect)
            if deployment_id is None:
                return {}
            found = deployment_triggers(prefect, deployment_id)
        return {name: bool(a.enabled) for name, a in sorted(found.items()) if _upstream(name) == job_id}

    def notifications_of(self, job_id: int) -> dict[str, bool]:
        """The notification automations of job `job_id` (`job-<id>-notify-*`) on this deployment: name -> enabled."""
        with gateway_or_connect(self.gateway) as prefect:
            found = notification_automations(prefect, self._name)
        return {
            name: bool(a.enabled)
            for name, a in sorted(found.items())
            if (ids := notification_ids(name)) is not None and ids[0] == job_id
        }

    def guard_of(self, job_id: int) -> dict[str, bool]:
        """The guard trigger of job `job_id` (`job-<id>-guard`), when the guard deployment has one: name -> enabled."""
        with gateway_or_connect(self.gateway) as prefect:
            found = self._guard_triggers(prefect)
        return {name: bool(a.enabled) for name, a in found.items() if guard_trigger_job(name) == job_id}

    def read_all(self) -> dict[str, bool]:
        """Every trigger, notification automation and guard trigger of this deployment: name -> enabled."""
        with gateway_or_connect(self.gateway) as prefect:
            found = dict(notification_automations(prefect, self._name))
            deployment_id = self._deployment_id(prefect)
            if deployment_id is not None:
                found.update(deployment_triggers(prefect, deployment_id))
            found.update(self._guard_triggers(prefect))
        return {name: bool(a.enabled) for name, a in sorted(found.items())}

    def before_start_of(self, job_id: int, keep_on: Collection[int] = ()) -> dict[str, bool]:
        """The before-start automations (`notify-<id>-before-start`) that job `job_id`'s cutover turns on (their tags
        name it): name -> enabled. Those that also serve a job in `keep_on` (still cut over) are left out."""
        kept = {job_tag(other) for other in keep_on if other != job_id}
        with gateway_or_connect(self.gateway) as prefect:
            found = notification_automations(prefect, self._name)
        return {
            name: bool(a.enabled)
            for name, a in sorted(found.items())
            if is_before_start_name(name) and job_tag(job_id) in (a.tags or []) and not kept & set(a.tags or [])
        }

    def switched_with(self, job_id: int, keep_on: Collection[int] = ()) -> dict[str, bool]:
        """Every automation cutover and rollback switch with job `job_id`: name -> enabled.

        These are the triggers of the jobs chained to it, its own notification automations, those of each
        chained job that has no schedule of its own (its runs are Prefect's once this job is cut over), and the
        before-start automations of its notification settings, except those that also serve a job of `keep_on`
        (rollback passes the jobs that stay cut over: their runs still need them).
        """
        with gateway_or_connect(self.gateway) as prefect:
            on = PrefectTriggers(self.deployment, prefect)
            chained = on.after_job(job_id)
            found = {
                **chained,
                **on.notifications_of(job_id),
                **on.before_start_of(job_id, keep_on),
                **on.guard_of(job_id),
            }
            scheduled = PrefectSchedules.by_job(PrefectSchedules(self.deployment, prefect).read_all() or {})
            for name in chained:
                jobs = trigger_jobs(name)
                if jobs is not None and jobs[0] not in scheduled:
                    found.update(on.notifications_of(jobs[0]))
        return found

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Switch the trigger on or off (nothing happens when it does not exist: read it back to know)."""

        with gateway_or_connect(self.gateway) as prefect:
            automation = self._find(prefect, name)
            if automation is not None:
                prefect.set_automation_enabled(automation.id, enabled)

    def _deployment_id(self, prefect: PrefectGateway) -> UUID | None:
        return PrefectSchedules(self.deployment).deployment_id(prefect)

    @property
    def _name(self) -> str:
        return self.deployment.rpartition("/")[2]

    def _guard_triggers(self, prefect: PrefectGateway) -> dict[str, Automation]:
        """The guard deployment's `job-<id>-guard` triggers by name (none without a guard deployment)."""
        guard = prefect.read_deployment(f"{GUARD_FLOW}/{guard_name(self._name)}")
        if guard is None:
            return {}
        found = [a for a in prefect.read_related_automations(guard.id) if guard_trigger_job(a.name) is not None]
        return one_per_name(found)[0]

    def _find(self, prefect: PrefectGateway, name: str) -> Automation | None:
        if is_notification_name(name):
            return notification_automations(prefect, self._name).get(name)
        if guard_trigger_job(name) is not None:
            return self._guard_triggers(prefect).get(name)
        deployment_id = self._deployment_id(prefect)
        return None if deployment_id is None else deployment_triggers(prefect, deployment_id).get(name)


def _upstream(name: str) -> int | None:
    jobs = trigger_jobs(name)
    return None if jobs is None else jobs[1]


def automation_role(name: str) -> str:
    """How cutover's and rollback's problems name an automation: what it does for the job."""
    if is_notification_name(name):
        return f"Prefect notification automation {name}"
    if guard_trigger_job(name) is not None:
        return f"Prefect guard trigger {name} (the guarded window after cutover)"
    return f"Prefect trigger {name} (a job chained to this one)"
