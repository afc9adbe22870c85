"""Status of every migrated job: both schedulers, last runs on each side, parity verdict, ledger state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import DbtCloudNotFoundError
from migration.ledger import Ledger, LedgerState
from migration.notifications import before_start_groups
from migration.plan import MigrationPlan
from migration.prefect_switch import FlowRunSummary, PrefectSchedules
from migration.switch_context import schedule_on
from migration.translate import schedule_slug
from parity.model import Verdict


class DbtCloudRunSummary(BaseModel):
    """The newest run of a job in dbt Cloud."""

    model_config = ConfigDict(frozen=True)

    id: int
    status: str
    created_at: datetime | None
    finished_at: datetime | None


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
) -> StatusReport:
    """Read both sides, the parity verdicts and the ledger for every job of the plan, the ledger or Prefect.

    Args:
        plan: the plan (built from `cutover.jobs_as_planned`, so cut-over jobs keep their rows).
        automations: the deployment's triggers and notification automations, name -> enabled (see
            `PrefectTriggers.read_all`); when given, a cut-over job whose automations are missing or off disagrees.
    """
    names = {j.job_id: j.job_name for j in plan.jobs}
    params = {s.job_id: s.parameters for s in plan.schedules}
    schedules = prefect.read_all() or {}
    # Every job anyone knows of: planned, recorded in the ledger, or with a schedule in Prefect (a job must
    # never vanish from status because one of the three lost track of it).
    in_prefect = {int(slug[4:]) for slug in schedules if slug.startswith("job-") and slug[4:].isdigit()}
    job_ids = sorted(
        {j.job_id for j in plan.jobs} | {s.job_id for s in plan.schedules} | set(ledger.job_ids()) | in_prefect
    )
    rows = []
    for job_id in job_ids:
        slug = schedule_slug(job_id)
        try:
            job = client.get_job_dict(job_id)
        except DbtCloudNotFoundError:
            job = None
        runs = client.list_runs(job_definition_id=job_id, limit=1)
        last = runs[0] if runs else None
        schedule = schedules.get(slug)
        parameters = schedule.parameters if schedule is not None else params.get(job_id)
        records = ledger.records(job_id)
        state = ledger.state(job_id, records)
        verdict = verdicts.get(job_id)
        rows.append(
            JobStatusRow(
                job_id=job_id,
                job_name=names.get(job_id) or (str(job.get("name", "")) if job else ""),
                slug=slug,
                dbt_cloud_schedule_on=None if job is None else schedule_on(job),
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
            )
        )
    return StatusReport(tenant=ledger.tenant, deployment=prefect.deployment, ledger=ledger.url, jobs=rows)
