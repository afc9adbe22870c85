"""Status of every migrated job: where it runs (dbt Cloud, Prefect, both or nowhere), both schedulers, its chained-job
trigger and notification automations, the next run, last runs on each side, parity verdict, shadow readiness, ledger
state."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from dbt2prefect.names import guard_trigger_name, schedule_slug
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import DbtCloudNotFoundError
from migration.dbt_cloud.models import Job
from migration.ledger import Ledger, LedgerState, PrefectScheduleState, utcnow
from migration.notifications import before_start_groups
from migration.plan import MigrationPlan
from migration.prefect_switch import FlowRunSummary, PrefectSchedules
from migration.schedules import InvalidCron, PrefectScheduleSpec, prefect_fire_times, reference_fire_times
from migration.switch_context import schedule_on
from parity.model import Verdict
from parity.shadow import JobReadiness


class DbtCloudRunSummary(BaseModel):
    """The newest run of a job in dbt Cloud."""

    model_config = ConfigDict(frozen=True)

    id: int
    status: str
    created_at: datetime | None
    finished_at: datetime | None


RunsOn = Literal["dbt Cloud", "Prefect", "both", "nowhere"]
AutomationState = Literal["on", "off", "missing", "partly off"]


class JobStatusRow(BaseModel):
    """One job's row in `dbt2prefect status`. None means unknown or absent (shown as '-')."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    job_name: str
    slug: str
    dbt_cloud_schedule_on: bool | None
    prefect_schedule: str
    parity_verdict: str | None
    parity_time: datetime | None
    dbt_cloud_last_run: DbtCloudRunSummary | None
    prefect_last_run: FlowRunSummary | None
    ledger_state: LedgerState
    ledger_updated: datetime | None
    disagreement: str | None = None
    """Set when the Prefect schedule's active flag is not what the ledger says (a redeploy or a hand edit), or a
    cut-over job's automations are missing or off."""
    runs_on: RunsOn | None = None
    """Which scheduler starts the job (its own schedule, or its trigger after the job it is chained to); None for a
    job that runs only when started by hand or by CI."""
    triggered_by: int | None = None
    """The job this one is chained to (it runs after that job's runs), if any."""
    trigger: AutomationState | None = None
    """The chained job's trigger on Prefect (None when it is not chained or the automations were not read)."""
    automations: AutomationState | None = None
    """The job's notification automations on Prefect (None when it has none or they were not read)."""
    guard: AutomationState | None = None
    """The job's guard trigger (`job-<id>-guard`) on Prefect: on while the job is cut over and watched (None when it
    has none or the automations were not read)."""
    next_run: datetime | None = None
    """The next time its schedule fires, on the side(s) that run it (None for chained and on-demand jobs)."""
    runs_problem: str | None = None
    """Set when the job runs nowhere or on both sides, has more than one schedule on Prefect, or a cutover or
    rollback of it is unfinished, with the fix."""
    readiness: JobReadiness | None = None
    """The job's shadow streak (None when it is not in the parallel-run period)."""


_LEDGER_ACTIVE = {LedgerState.CUT_OVER: True, LedgerState.ROLLED_BACK: False, LedgerState.NONE: False}


def ledger_disagreement(state: LedgerState, active: bool | None) -> str | None:
    """Why a schedule's active flag contradicts the ledger, with the fix; None when they agree (or it is unknown)."""
    expected = _LEDGER_ACTIVE.get(state)
    if active is None or expected is None or active == expected:
        return None
    if expected:
        return (
            "the Prefect schedule is paused but the ledger says cut over, so no scheduler runs the job; "
            "run `dbt2prefect cutover` for it again (it switches the schedule back on), or roll it back"
        )
    return (
        f"the Prefect schedule is active but the ledger says {state.value}, so the job may run twice; pause it "
        "in Prefect, or cut the job over with `dbt2prefect cutover`"
    )


class StatusReport(BaseModel):
    """Status of the tenant's migrated jobs."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    deployment: str
    ledger: str
    jobs: list[JobStatusRow]

    def disagreements(self) -> list[JobStatusRow]:
        """Rows whose Prefect schedule contradicts the ledger."""
        return [row for row in self.jobs if row.disagreement is not None]

    def not_running_once(self) -> list[JobStatusRow]:
        """Rows of jobs that run nowhere or on both sides, have more than one schedule on Prefect, or whose cutover
        or rollback is unfinished."""
        return [row for row in self.jobs if row.runs_problem is not None]


def automation_state(names: list[str], automations: Mapping[str, bool]) -> AutomationState | None:
    """One word for a set of automations on Prefect: missing (any), on (all), off (all) or partly off."""
    if not names:
        return None
    if any(name not in automations for name in names):
        return "missing"
    enabled = [automations[name] for name in names]
    return "on" if all(enabled) else ("off" if not any(enabled) else "partly off")


def next_fire_time(
    now: datetime, dbt_cloud_cron: str | None, prefect: PrefectScheduleState | None, day_or: bool = True
) -> datetime | None:
    """The earliest next fire time of a dbt Cloud cron (UTC, dbt Cloud's rules) and a Prefect schedule (Prefect's own
    schedule code); None when neither is given or neither can be evaluated."""
    times = []
    if dbt_cloud_cron:
        with contextlib.suppress(InvalidCron):
            times += reference_fire_times(dbt_cloud_cron, now, 1)
    if prefect is not None and (prefect.cron or prefect.rrule):
        spec = PrefectScheduleSpec(
            kind="cron" if prefect.cron else "rrule",
            expression=prefect.cron or prefect.rrule or "",
            day_or=day_or,
            timezone=prefect.timezone or "UTC",
        )
        with contextlib.suppress(ValueError):
            times += prefect_fire_times(spec, now, 1)
    return min(times) if times else None


_SIDES: dict[tuple[bool, bool], RunsOn] = {
    (True, True): "both",
    (True, False): "dbt Cloud",
    (False, True): "Prefect",
    (False, False): "nowhere",
}


def runs_problem(job_id: int, runs_on: RunsOn | None, state: LedgerState, triggered_by: int | None) -> str | None:
    """Why a job does not run exactly once per schedule (or its switch is unfinished), with the fix; None when fine."""
    if state is LedgerState.CUTOVER_IN_PROGRESS:
        return (
            f"its cutover is unfinished (ledger: {state.value}); finish it with `dbt2prefect cutover --job {job_id}` "
            f"or undo it with `dbt2prefect rollback --job {job_id}`"
        )
    if state is LedgerState.ROLLBACK_IN_PROGRESS:
        return (
            f"its rollback is unfinished (ledger: {state.value}); finish it with `dbt2prefect rollback --job {job_id}`"
        )
    # A job that only runs chained is switched with the job it runs after (its trigger goes with that job).
    switch = job_id if triggered_by is None else triggered_by
    after = "" if triggered_by is None else f" (it runs after job {triggered_by}, switched with it)"
    if runs_on == "nowhere":
        return (
            f"runs nowhere{after}: neither dbt Cloud nor Prefect starts it; switch it on in one place "
            f"(`dbt2prefect cutover --job {switch}` for Prefect, `dbt2prefect rollback --job {switch}` for dbt Cloud)"
        )
    if runs_on == "both":
        return (
            f"runs twice{after}: both dbt Cloud and Prefect start it; turn one side off "
            f"(`dbt2prefect cutover --job {switch}` keeps Prefect, `dbt2prefect rollback --job {switch}` dbt Cloud)"
        )
    return None


def schedules_problem(schedules: list[PrefectScheduleState]) -> str | None:
    """Why a job with more than one schedule on Prefect may run twice, with the fix; None for one schedule or none.

    `prefect deploy` matches schedules by exact slug: deploying a file whose slug names the job beside an older
    `job-<id>` slug adds a second schedule of the job instead of updating the first.
    """
    if len(schedules) < 2:
        return None
    slugs = ", ".join(s.slug for s in schedules)
    active = sum(1 for s in schedules if s.active)
    now = f"{active} of them active, so it runs {active} times" if active > 1 else "once both are active it runs twice"
    return (
        f"has {len(schedules)} schedules on Prefect ({slugs}), {now}; run `dbt2prefect apply` (it keeps one "
        f"schedule per job)"
    )


def automations_disagreement(
    plan: MigrationPlan, job_id: int, state: LedgerState, automations: Mapping[str, bool]
) -> str | None:
    """Why a cut-over job's automations (its notification automations, the triggers of the jobs chained to it)
    are not doing their part on Prefect, with the fix; None when they are there and on, or the job is not cut over.

    Args:
        automations: the deployment's triggers and notification automations on Prefect, name -> enabled.
    """
    if state is not LedgerState.CUT_OVER:
        return None
    wanted = [n.name for n in plan.notifications if n.switch_job_id == job_id]
    wanted += [g.name for g in before_start_groups(plan.notifications) if job_id in g.switch_job_ids]
    wanted += [t.name for t in plan.triggers if t.upstream_job_id == job_id]
    missing = sorted(name for name in wanted if name not in automations)
    paused = sorted(name for name in wanted if automations.get(name) is False)
    problems = []
    if missing:
        problems.append(
            f"cut over, but its automation(s) {', '.join(missing)} are missing on Prefect, so nobody hears of its "
            "runs (or its chained jobs do not start): create them with `dbt2prefect apply --automations-only` "
            "(after `prefect deploy`) or `dbt2prefect apply`"
        )
    if paused:
        problems.append(
            f"cut over, but its automation(s) {', '.join(paused)} are disabled: run `dbt2prefect cutover` for it "
            "again (it switches them on)"
        )
    return "; ".join(problems) or None


def collect_status(
    plan: MigrationPlan,
    client: DbtCloudClient,
    prefect: PrefectSchedules,
    ledger: Ledger,
    verdicts: Mapping[int, tuple[Verdict, datetime]],
    automations: Mapping[str, bool] | None = None,
    now: datetime | None = None,
    readiness: Mapping[int, JobReadiness] | None = None,
) -> StatusReport:
    """Read both sides, the parity verdicts and the ledger for every job of the plan, the ledger or Prefect.

    Args:
        plan: the plan (built from `cutover.jobs_as_planned`, so cut-over jobs keep their rows).
        automations: the deployment's triggers and notification automations, name -> enabled (see
            `PrefectTriggers.read_all`); when given, a cut-over job whose automations are missing or off disagrees,
            and a chained job runs on Prefect only while its trigger is on.
        now: the time the next runs are computed from (default: now).
        readiness: the shadow readiness of the jobs in the parallel-run period (`parity.shadow.read_readiness`).
    """
    now = now or utcnow()
    names = {j.job_id: j.job_name for j in plan.jobs}
    params = {s.job_id: s.parameters for s in plan.schedules}
    every_schedule = PrefectSchedules.all_by_job(prefect.read_all() or {})
    schedules = {job_id: found[0] for job_id, found in every_schedule.items()}
    # Every job anyone knows of: planned, recorded in the ledger, or with a schedule in Prefect (a job must
    # never vanish from status because one of the three lost track of it).
    in_prefect = set(schedules)
    job_ids = sorted(
        {j.job_id for j in plan.jobs} | {s.job_id for s in plan.schedules} | set(ledger.job_ids()) | in_prefect
    )
    planned = {s.job_id: s for s in plan.schedules}
    chained = {t.job_id: t for t in plan.triggers}
    seen = automations or {}
    raw: dict[int, dict[str, Any] | None] = {}
    live: dict[int, Job | None] = {}
    for job_id in job_ids:
        found: dict[str, Any] | None
        try:
            found = client.get_job_dict(job_id)
        except DbtCloudNotFoundError:
            found = None
        raw[job_id], live[job_id] = found, None if found is None else Job.from_api(found)
    runs_on: dict[int, RunsOn | None] = {}

    def sides(job_id: int, visiting: frozenset[int] = frozenset()) -> RunsOn | None:
        """Where the job runs: its own schedules, or after the job it is chained to (dbt Cloud's chain there, the
        deployment's trigger on Prefect)."""
        if job_id in runs_on:
            return runs_on[job_id]
        job = live.get(job_id)
        schedule = schedules.get(job_id)
        in_cloud = job is not None and not job.is_deleted and job.triggers.schedule
        in_prefect = any(s.active for s in every_schedule.get(job_id, []))
        scheduled = job_id in planned or schedule is not None or in_cloud
        trigger = chained.get(job_id)
        if trigger is not None and trigger.upstream_job_id not in visiting:
            upstream = sides(trigger.upstream_job_id, visiting | {job_id})
            chain = job.job_completion_trigger_condition if job is not None and not job.is_deleted else None
            in_cloud |= (
                chain is not None
                and chain.condition.job_id == trigger.upstream_job_id
                and upstream in ("dbt Cloud", "both")
            )
            in_prefect |= automations is not None and seen.get(trigger.name) is True and upstream in ("Prefect", "both")
            scheduled = True
        runs_on[job_id] = _SIDES[(in_cloud, in_prefect)] if scheduled else None
        return runs_on[job_id]

    rows = []
    for job_id in job_ids:
        job = live[job_id]
        runs = client.list_runs(job_definition_id=job_id, limit=1)
        last = runs[0] if runs else None
        schedule = schedules.get(job_id)
        slug = (
            schedule.slug
            if schedule is not None
            else planned[job_id].slug
            if job_id in planned
            else schedule_slug(job_id, names.get(job_id))
        )
        parameters = schedule.parameters if schedule is not None else params.get(job_id)
        records = ledger.records(job_id)
        state = ledger.state(job_id, records)
        verdict = verdicts.get(job_id)
        trigger = chained.get(job_id)
        where = sides(job_id)
        cloud_on = None if raw[job_id] is None else schedule_on(raw[job_id] or {})
        in_cloud = bool(cloud_on) and job is not None and not job.is_deleted
        notifications = [n.name for n in plan.notifications if n.job_id == job_id]
        rows.append(
            JobStatusRow(
                job_id=job_id,
                job_name=names.get(job_id) or (job.name if job is not None else ""),
                slug=slug,
                dbt_cloud_schedule_on=cloud_on,
                prefect_schedule="missing" if schedule is None else ("active" if schedule.active else "paused"),
                parity_verdict=None if verdict is None else verdict[0].value,
                parity_time=None if verdict is None else verdict[1],
                dbt_cloud_last_run=None
                if last is None
                else DbtCloudRunSummary(
                    id=last.id,
                    status=last.status.name.lower(),
                    created_at=last.created_at,
                    finished_at=last.finished_at,
                ),
                prefect_last_run=prefect.latest_flow_run(parameters) if schedule is not None else None,
                ledger_state=state,
                ledger_updated=records[-1].at if records else None,
                disagreement="; ".join(
                    problem
                    for problem in (
                        ledger_disagreement(state, None if schedule is None else schedule.active),
                        None if automations is None else automations_disagreement(plan, job_id, state, automations),
                    )
                    if problem
                )
                or None,
                runs_on=where,
                triggered_by=None if trigger is None else trigger.upstream_job_id,
                trigger=None if trigger is None or automations is None else automation_state([trigger.name], seen),
                automations=None if automations is None else automation_state(notifications, seen),
                guard=automation_state([guard_trigger_name(job_id)], seen)
                if guard_trigger_name(job_id) in seen
                else None,
                next_run=next_fire_time(
                    now,
                    job.schedule.cron if in_cloud and job is not None else None,
                    schedule if schedule is not None and schedule.active else None,
                    planned[job_id].day_or if job_id in planned else True,
                ),
                runs_problem="; ".join(
                    problem
                    for problem in (
                        runs_problem(
                            job_id,
                            where,
                            state,
                            trigger.upstream_job_id if trigger is not None and job_id not in planned else None,
                        ),
                        schedules_problem(every_schedule.get(job_id, [])),
                    )
                    if problem
                )
                or None,
                readiness=(readiness or {}).get(job_id),
            )
        )
    return StatusReport(tenant=ledger.tenant, deployment=prefect.deployment, ledger=ledger.url, jobs=rows)
