"""Cutover: dbt Cloud schedule triggers off, the job's Prefect schedule on, with a ledger entry first.

Per job, in this order (each step is skipped when the state it produces is already there, so a rerun after a
crash at any point finishes the job without repeating side effects):

1. ledger: `cutover_started` with the job's full definition as the API returns it and the Prefect schedule's
   state. Written only when no unfinished cutover exists: a rerun never records an already-modified job as the
   original.
2. dbt Cloud: `triggers.schedule = false`, posted as the full body of writable fields (never state=2).
3. Prefect: the `job-<id>` schedule active, sent together with its parameters (see `prefect_switch`), and the
   triggers of the jobs chained to it (`job-*-after-job-<id>`) and its notification automations
   (`job-<id>-notify-*`) enabled.
4. verify: both sides read back; the result is a new `cutover_verified` record.

Nothing happens to any job unless every requested job passes the gate: a PASS parity verdict (or `force` with a
reason, recorded in the ledger) and an applied plan (the deployment has the job's schedule as planned). A job in
the parallel-run period (it has shadow pairs, or `[tenant.shadow]` requires them) needs its streak instead of the
verdict: K consecutive PASS pairs over at least D days (`parity.shadow.ShadowGate`); the ledger records the streak.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from migration.dbt_cloud.models import Job
from migration.errors import CutoverRefusedError, CutoverRequestError, CutoverVerificationError
from migration.ledger import (
    Ledger,
    LedgerRecord,
    LedgerState,
    RecordKind,
    Verification,
    new_operation_id,
)
from migration.plan import MigrationPlan, PlannedSchedule
from migration.prefect_switch import automation_role
from migration.switch_context import JobOutcome, SwitchContext, SwitchReport, chained_children, schedule_on
from parity.model import Verdict
from parity.shadow import ShadowGate

OPEN_STATES = (LedgerState.CUTOVER_IN_PROGRESS, LedgerState.CUT_OVER, LedgerState.ROLLBACK_IN_PROGRESS)
"""States in which the ledger, not dbt Cloud, holds the job's pre-cutover definition."""


def jobs_as_planned(jobs: Sequence[Job], ledger: Ledger) -> list[Job]:
    """The jobs to plan from: a job the ledger shows as (being) cut over is taken as recorded before cutover.

    After cutover a job's dbt Cloud schedule trigger is off, so a plan built from the live job would drop its
    schedule; the recorded original keeps the plan (and reruns of cutover, rollback and status) stable.
    """
    out = []
    for job in jobs:
        records = ledger.records(job.id)
        started = Ledger.last_of(records, RecordKind.CUTOVER_STARTED)
        if ledger.state(job.id, records) in OPEN_STATES and started is not None and started.original_job:
            out.append(Job.from_api(started.original_job))
        else:
            out.append(job)
    return out


@dataclass(frozen=True)
class CutoverRequest:
    """What to cut over and on whose authority.

    Attributes:
        job_ids: jobs to cut over; empty means every job with a schedule in the plan.
        force: cut over without a PASS parity verdict (needs `reason`).
        reason: why, recorded in the ledger (required with force).
    """

    job_ids: tuple[int, ...] = ()
    force: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        bad = [job_id for job_id in self.job_ids if job_id <= 0]
        if bad:
            raise CutoverRequestError(f"--job {bad[0]} is not a dbt Cloud job id; pass a positive job id")
        if self.force and not (self.reason or "").strip():
            raise CutoverRequestError("--force needs --reason '...': the reason is recorded in the ledger")


def _select(plan: MigrationPlan, job_ids: Sequence[int]) -> tuple[list[PlannedSchedule], dict[int, str]]:
    by_job = {s.job_id: s for s in plan.schedules}
    if not job_ids:
        return list(plan.schedules), {}
    refusals: dict[int, str] = {}
    chosen = []
    statuses = {j.job_id: j.status for j in plan.jobs}
    for job_id in dict.fromkeys(job_ids):
        if job_id in by_job:
            chosen.append(by_job[job_id])
        elif job_id in statuses:
            refusals[job_id] = f"has no schedule in the plan (status {statuses[job_id]}); nothing to cut over"
    unknown = [job_id for job_id in dict.fromkeys(job_ids) if job_id not in statuses and job_id not in by_job]
    if unknown:
        raise CutoverRequestError(
            f"cutover refused, nothing changed: --job {', '.join(map(str, unknown))} is not a job of the dbt Cloud "
            "account's inventory; check the job id (`dbt2prefect plan` lists them)"
        )
    return chosen, refusals


def _parity_problem(job_id: int, verdicts: Mapping[int, tuple[Verdict, datetime]]) -> str | None:
    verdict = verdicts.get(job_id)
    if verdict is None:
        return "has no parity verdict; run `dbt2prefect parity --job ID` first"
    if verdict[0] != Verdict.PASS:
        return f"latest parity verdict is {verdict[0].value} ({verdict[1]:%Y-%m-%d %H:%M} UTC); fix and rerun parity"
    return None


def _evidence_problem(
    job_id: int, verdicts: Mapping[int, tuple[Verdict, datetime]], shadow: ShadowGate | None
) -> str | None:
    """Why the evidence does not allow the job's cutover: its shadow streak when it is in the parallel-run
    period, else its latest parity verdict."""
    if shadow is not None and shadow.applies(job_id):
        return shadow.problem(job_id)
    return _parity_problem(job_id, verdicts)


def _evidence(job_id: int, verdicts: Mapping[int, tuple[Verdict, datetime]], shadow: ShadowGate | None) -> str | None:
    """The evidence cutover went on, as the ledger records it."""
    if shadow is not None and shadow.applies(job_id):
        return shadow.of(job_id).evidence()
    verdict = verdicts.get(job_id)
    return None if verdict is None else f"{verdict[0].value} at {verdict[1].isoformat()}"


def _gate(
    planned: PlannedSchedule,
    state: LedgerState,
    live: dict[str, Any],
    verdicts: Mapping[int, tuple[Verdict, datetime]],
    ctx: SwitchContext,
    request: CutoverRequest,
    shadow: ShadowGate | None = None,
) -> list[str]:
    """Reasons this job may not start a cutover (empty = it may)."""
    if state == LedgerState.ROLLBACK_IN_PROGRESS:
        return ["has an unfinished rollback; run `dbt2prefect rollback --job ID` to finish it first"]
    problems: list[str] = []
    differences = ctx.prefect.plan_differences(planned)
    if differences is None:
        problems.append(
            f"plan not applied: deployment {ctx.prefect.deployment} has no schedule {planned.slug}; "
            "run `dbt2prefect apply`"
        )
    elif differences:
        problems.append(
            f"plan not applied: schedule {planned.slug} differs from the plan in {', '.join(differences)}; "
            "run `dbt2prefect apply`"
        )
    if state in (LedgerState.CUTOVER_IN_PROGRESS, LedgerState.CUT_OVER):
        return problems  # gated when it started; resuming must not depend on a newer parity run
    parity = _evidence_problem(planned.job_id, verdicts, shadow)
    if parity is not None and not request.force:
        problems.append(parity + " (or pass --force --reason '...')")
    if not schedule_on(live) and not request.force:
        problems.append(
            "dbt Cloud schedule trigger is already off and the ledger has no cutover of it; the original "
            "definition is unknown. Turn it back on in dbt Cloud, or pass --force --reason '...'"
        )
    return problems


def _verify(planned: PlannedSchedule, ctx: SwitchContext) -> Verification:
    job = ctx.dbt_cloud.get_job_dict(planned.job_id)
    schedule = ctx.prefect.read(planned.slug)
    problems = []
    if schedule_on(job):
        problems.append("dbt Cloud schedule trigger is still on")
    if schedule is None:
        problems.append(f"Prefect schedule {planned.slug} is missing")
    else:
        if not schedule.active:
            problems.append(f"Prefect schedule {planned.slug} is paused")
        if schedule.parameters != planned.parameters:
            problems.append(f"Prefect schedule {planned.slug} parameters differ from the plan")
    for name, enabled in ctx.triggers.switched_with(planned.job_id).items():
        if not enabled:
            problems.append(f"{automation_role(name)} is disabled")
    return Verification(
        ok=not problems,
        dbt_cloud_schedule_on=schedule_on(job),
        prefect_active=None if schedule is None else schedule.active,
        problems=problems,
    )


def _cut_over_one(
    planned: PlannedSchedule,
    live: dict[str, Any],
    records: list[LedgerRecord],
    state: LedgerState,
    verdicts: Mapping[int, tuple[Verdict, datetime]],
    ctx: SwitchContext,
    request: CutoverRequest,
    shadow: ShadowGate | None = None,
) -> JobOutcome:
    job_id = planned.job_id
    if state == LedgerState.CUT_OVER:
        current = _verify(planned, ctx)
        if current.ok:
            return JobOutcome(job_id=job_id, job_name=planned.job_name, action="already cut over", state=state)
    started = Ledger.last_of(records, RecordKind.CUTOVER_STARTED)
    if state not in (LedgerState.CUTOVER_IN_PROGRESS, LedgerState.CUT_OVER) or started is None:
        ctx.checkpoint(job_id, "ledger")
        now = ctx.clock()
        started = ctx.ledger.append(
            LedgerRecord(
                tenant=ctx.tenant,
                job_id=job_id,
                seq=0,
                kind=RecordKind.CUTOVER_STARTED,
                operation=new_operation_id("cutover", now),
                at=now,
                by=ctx.by,
                forced=request.force,
                reason=request.reason,
                parity=_evidence(job_id, verdicts, shadow),
                original_job=live,
                prefect_schedule=ctx.prefect.read(planned.slug),
            )
        )
    ctx.checkpoint(job_id, "dbt_cloud")
    job = ctx.dbt_cloud.get_job_dict(job_id)
    if schedule_on(job):
        ctx.dbt_cloud.update_job({**job, "triggers": {**job["triggers"], "schedule": False}})
    ctx.checkpoint(job_id, "prefect")
    schedule = ctx.prefect.read(planned.slug)
    if schedule is not None and (not schedule.active or schedule.parameters != planned.parameters):
        ctx.prefect.set_active(schedule, True, planned.parameters)
    triggers = ctx.triggers
    for name, enabled in triggers.switched_with(job_id).items():
        if not enabled:
            triggers.set_enabled(name, True)
    ctx.checkpoint(job_id, "verify")
    verification = _verify(planned, ctx)
    now = ctx.clock()
    ctx.ledger.append(
        LedgerRecord(
            tenant=ctx.tenant,
            job_id=job_id,
            seq=0,
            kind=RecordKind.CUTOVER_VERIFIED,
            operation=started.operation,
            at=now,
            by=ctx.by,
            forced=started.forced,
            reason=started.reason,
            verification=verification,
        )
    )
    final = LedgerState.CUT_OVER if verification.ok else LedgerState.CUTOVER_IN_PROGRESS
    return JobOutcome(
        job_id=job_id, job_name=planned.job_name, action="cut over", state=final, verification=verification
    )


def _preview_one(
    planned: PlannedSchedule, live: dict[str, Any], records: list[LedgerRecord], state: LedgerState, ctx: SwitchContext
) -> JobOutcome:
    """What `_cut_over_one` would switch for this job, read from both sides; nothing is written."""
    job_id = planned.job_id
    if state == LedgerState.CUT_OVER and _verify(planned, ctx).ok:
        return JobOutcome(job_id=job_id, job_name=planned.job_name, action="already cut over", state=state)
    changes = []
    started = Ledger.last_of(records, RecordKind.CUTOVER_STARTED)
    if state not in (LedgerState.CUTOVER_IN_PROGRESS, LedgerState.CUT_OVER) or started is None:
        changes.append(f"ledger: new {RecordKind.CUTOVER_STARTED.value} record (the job's definition as it is now)")
    if schedule_on(live):
        changes.append("dbt Cloud schedule trigger: on -> off")
    schedule = ctx.prefect.read(planned.slug)
    if schedule is not None and not schedule.active:
        changes.append(f"Prefect schedule {planned.slug}: paused -> active")
    if schedule is not None and schedule.parameters != planned.parameters:
        changes.append(f"Prefect schedule {planned.slug}: parameters set to the plan's")
    for name, enabled in ctx.triggers.switched_with(job_id).items():
        if not enabled:
            changes.append(f"{automation_role(name)}: off -> on")
    changes.append(f"ledger: new {RecordKind.CUTOVER_VERIFIED.value} record (both sides read back)")
    return JobOutcome(job_id=job_id, job_name=planned.job_name, action="would cut over", state=state, changes=changes)


def cutover(
    plan: MigrationPlan,
    jobs: Sequence[Job],
    verdicts: Mapping[int, tuple[Verdict, datetime]],
    ctx: SwitchContext,
    request: CutoverRequest,
    dry_run: bool = False,
    shadow: ShadowGate | None = None,
) -> SwitchReport:
    """Cut the requested jobs over from dbt Cloud to Prefect (see the module docstring for the steps).

    Args:
        plan: the migration plan, built from `jobs_as_planned(...)` so cut-over jobs keep their schedule.
        jobs: every job of the account (to find chained jobs).
        verdicts: latest parity verdict per job (`parity.store.load_latest_verdicts`).
        ctx: dbt Cloud client, Prefect schedules, ledger, who, hook.
        request: which jobs, and force/reason.
        dry_run: check the gate and read both sides, change nothing (no ledger record either): each job's
            `changes` say what would be switched.
        shadow: the readiness of jobs in the parallel-run period; a job it applies to is gated on its streak of
            PASS pairs instead of its latest verdict (None: every job on its verdict).

    Returns:
        What happened (or would happen) per job, with warnings about chained jobs.

    Raises:
        CutoverRequestError: a requested job is not in the inventory (nothing was changed).
        CutoverRefusedError: a job fails the gate (nothing was changed for any job).
        CutoverVerificationError: a job was switched but reading back did not confirm it.
        DbtCloudApiError, PrefectApiError, LedgerError: a service failed; rerun to resume.
    """
    chosen, refusals = _select(plan, request.job_ids)
    if not chosen and not refusals:
        raise CutoverRefusedError("the plan has no scheduled jobs; nothing to cut over")
    prepared = []
    for planned in chosen:
        records = ctx.ledger.records(planned.job_id)
        state = ctx.ledger.state(planned.job_id, records)
        live = ctx.dbt_cloud.get_job_dict(planned.job_id)
        problems = _gate(planned, state, live, verdicts, ctx, request, shadow)
        if problems:
            refusals[planned.job_id] = "; ".join(problems)
        prepared.append((planned, live, records, state))
    if refusals:
        lines = [f"job {job_id}: {reason}" for job_id, reason in sorted(refusals.items())]
        raise CutoverRefusedError("cutover refused, nothing changed:\n" + "\n".join(lines))
    outcomes = []
    warnings = []
    for planned, live, records, state in prepared:
        if dry_run:
            outcome = _preview_one(planned, live, records, state, ctx)
        else:
            outcome = _cut_over_one(planned, live, records, state, verdicts, ctx, request, shadow)
        children = chained_children(list(jobs), planned.job_id)
        switched = {int(t.job_id) for t in plan.triggers if t.upstream_job_id == planned.job_id}
        notes = [
            f"job {c.id} ({c.name}) is chained to job {planned.job_id}: it {'would then run' if dry_run else 'now runs'} "
            "after that job's Prefect runs "
            "(the deployment's trigger); a run of that job started in dbt Cloud still starts it there too"
            if c.id in switched
            else f"job {c.id} ({c.name}) is chained to job {planned.job_id} in dbt Cloud and keeps firing there "
            "whenever that job runs in dbt Cloud; it has no trigger in the plan (see its job_chaining finding)"
            for c in children
        ]
        warnings.extend(notes)
        outcomes.append(outcome.model_copy(update={"warnings": notes}))
    report = SwitchReport(operation="cutover", jobs=outcomes, warnings=warnings, dry_run=dry_run)
    failed = [o for o in outcomes if o.verification is not None and not o.verification.ok]
    if failed:
        lines = [f"job {o.job_id}: {'; '.join(o.verification.problems)}" for o in failed if o.verification]
        raise CutoverVerificationError(
            "cutover ran but the read-back does not match; rerun `dbt2prefect cutover` or roll back:\n"
            + "\n".join(lines)
        )
    return report
