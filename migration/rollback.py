"""Rollback: replay the ledger in reverse. Prefect schedule paused first, then the dbt Cloud job restored.

Per job with a cutover in the ledger (finished or not):

1. ledger: `rollback_started`, naming the `cutover_started` record it restores and the state of both sides now.
2. Prefect: the `job-<id>` schedule paused, sent with the parameters recorded before cutover, and the triggers
   of the jobs chained to it disabled.
3. dbt Cloud: the job posted back exactly as recorded (every writable field, `job_type` and `generate_sources`
   included).
4. verify: both sides read back; every writable field must equal the recorded original (`job_type` too). A new `rollback_verified`.

Each step is skipped when its effect is already there, so rollback is idempotent, finishes an interrupted
rollback, and works after a partial cutover (ledger written and nothing else, or dbt Cloud off only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbt2prefect.names import schedule_slug
from migration.errors import CutoverRefusedError, CutoverRequestError, CutoverVerificationError
from migration.ledger import Ledger, LedgerRecord, LedgerState, RecordKind, Verification, new_operation_id
from migration.prefect_switch import automation_role
from migration.switch_context import JobOutcome, SwitchContext, SwitchReport, field_differences, schedule_on


def _still_cut_over(ctx: SwitchContext, job_id: int) -> list[int]:
    """The other jobs the ledger holds cut over (or being cut over): automations they share stay on."""
    live = (LedgerState.CUT_OVER, LedgerState.CUTOVER_IN_PROGRESS)
    return [other for other in ctx.ledger.job_ids() if other != job_id and ctx.ledger.state(other) in live]


def _verify(original: dict[str, Any], slug: str, ctx: SwitchContext) -> Verification:
    job = ctx.dbt_cloud.get_job_dict(int(original["id"]))
    schedule = ctx.prefect.read(slug)
    problems = []
    differences = field_differences(job, original)
    if differences:
        problems.append(f"dbt Cloud job differs from the recorded original in {', '.join(differences)}")
    if schedule is not None and schedule.active:
        problems.append(f"Prefect schedule {slug} is still active")
    job_id = int(original["id"])
    for name, enabled in ctx.triggers.switched_with(job_id, _still_cut_over(ctx, job_id)).items():
        if enabled:
            problems.append(f"{automation_role(name)} is still enabled")
    return Verification(
        ok=not problems,
        dbt_cloud_schedule_on=schedule_on(job),
        prefect_active=None if schedule is None else schedule.active,
        problems=problems,
    )


def _restore_source(job_id: int, records: list[LedgerRecord]) -> tuple[LedgerRecord, dict[str, Any], str, str]:
    """The cutover_started record a rollback restores, the job as it recorded it, its name and its schedule's slug.

    Raises:
        CutoverRefusedError: the ledger has no such record.
    """
    started = Ledger.last_of(records, RecordKind.CUTOVER_STARTED)
    if started is None or started.original_job is None:
        raise CutoverRefusedError(f"job {job_id}: the ledger has no cutover_started record to restore from")
    original = started.original_job
    slug = started.prefect_schedule.slug if started.prefect_schedule else schedule_slug(job_id)
    return started, original, str(original.get("name", "")), slug


def _roll_back_one(job_id: int, records: list[LedgerRecord], state: LedgerState, ctx: SwitchContext) -> JobOutcome:
    started, original, name, slug = _restore_source(job_id, records)
    if state == LedgerState.ROLLED_BACK:
        current = _verify(original, slug, ctx)
        if current.ok:
            return JobOutcome(job_id=job_id, job_name=name, action="already rolled back", state=state)
    begun = Ledger.last_of(records, RecordKind.ROLLBACK_STARTED)
    if state != LedgerState.ROLLBACK_IN_PROGRESS or begun is None or begun.restores != started.seq:
        ctx.checkpoint(job_id, "ledger")
        now = ctx.clock()
        begun = ctx.ledger.append(
            LedgerRecord(
                tenant=ctx.tenant,
                job_id=job_id,
                seq=0,
                kind=RecordKind.ROLLBACK_STARTED,
                operation=new_operation_id("rollback", now),
                at=now,
                by=ctx.by,
                restores=started.seq,
                dbt_cloud_job=ctx.dbt_cloud.get_job_dict(job_id),
                prefect_schedule=ctx.prefect.read(slug),
            )
        )
    ctx.checkpoint(job_id, "prefect")
    schedule = ctx.prefect.read(slug)
    if schedule is not None and schedule.active:
        recorded = started.prefect_schedule
        # The parameters recorded before cutover are the plan's; send them so the PATCH cannot wipe them.
        parameters = recorded.parameters if recorded is not None and recorded.parameters else schedule.parameters
        ctx.prefect.set_active(schedule, False, parameters)
    triggers = ctx.triggers
    for trigger, enabled in triggers.switched_with(job_id, _still_cut_over(ctx, job_id)).items():
        if enabled:
            triggers.set_enabled(trigger, False)
    ctx.checkpoint(job_id, "dbt_cloud")
    live = ctx.dbt_cloud.get_job_dict(job_id)
    if field_differences(live, original):
        ctx.dbt_cloud.update_job(original)
    ctx.checkpoint(job_id, "verify")
    verification = _verify(original, slug, ctx)
    now = ctx.clock()
    ctx.ledger.append(
        LedgerRecord(
            tenant=ctx.tenant,
            job_id=job_id,
            seq=0,
            kind=RecordKind.ROLLBACK_VERIFIED,
            operation=begun.operation,
            at=now,
            by=ctx.by,
            restores=started.seq,
            verification=verification,
        )
    )
    final = LedgerState.ROLLED_BACK if verification.ok else LedgerState.ROLLBACK_IN_PROGRESS
    return JobOutcome(job_id=job_id, job_name=name, action="rolled back", state=final, verification=verification)


def _preview_one(job_id: int, records: list[LedgerRecord], state: LedgerState, ctx: SwitchContext) -> JobOutcome:
    """What `_roll_back_one` would switch for this job, read from both sides; nothing is written."""
    started, original, name, slug = _restore_source(job_id, records)
    if state == LedgerState.ROLLED_BACK and _verify(original, slug, ctx).ok:
        return JobOutcome(job_id=job_id, job_name=name, action="already rolled back", state=state)
    changes = []
    begun = Ledger.last_of(records, RecordKind.ROLLBACK_STARTED)
    if state != LedgerState.ROLLBACK_IN_PROGRESS or begun is None or begun.restores != started.seq:
        changes.append(f"ledger: new {RecordKind.ROLLBACK_STARTED.value} record (both sides as they are now)")
    schedule = ctx.prefect.read(slug)
    if schedule is not None and schedule.active:
        changes.append(f"Prefect schedule {slug}: active -> paused")
    for trigger, enabled in ctx.triggers.switched_with(job_id, _still_cut_over(ctx, job_id)).items():
        if enabled:
            changes.append(f"{automation_role(trigger)}: on -> off")
    live = ctx.dbt_cloud.get_job_dict(job_id)
    flipped = schedule_on(live) != schedule_on(original)
    if flipped:
        changes.append(f"dbt Cloud schedule trigger: {_ON_OFF[schedule_on(live)]} -> {_ON_OFF[schedule_on(original)]}")
    others = [field for field in field_differences(live, original) if not (flipped and field == "triggers")]
    if others:
        changes.append(f"dbt Cloud job: {', '.join(others)} restored as the ledger recorded")
    changes.append(f"ledger: new {RecordKind.ROLLBACK_VERIFIED.value} record (both sides read back)")
    return JobOutcome(job_id=job_id, job_name=name, action="would roll back", state=state, changes=changes)


_ON_OFF = {True: "on", False: "off"}


def rollback(job_ids: Sequence[int], ctx: SwitchContext, dry_run: bool = False) -> SwitchReport:
    """Undo cutovers recorded in the ledger (every job with a ledger entry when `job_ids` is empty).

    With `dry_run`, both sides are read and nothing is changed (no ledger record either): each job's `changes` say
    what would be switched.

    Returns:
        What happened per job.

    Raises:
        CutoverRequestError: a requested job has no cutover in the ledger (bad input: exit 2).
        CutoverVerificationError: a job was restored but reading back did not confirm it.
        DbtCloudApiError, PrefectApiError, LedgerError: a service failed; rerun to resume.
    """
    targets = list(dict.fromkeys(job_ids)) or ctx.ledger.job_ids()
    prepared = []
    missing = []
    for job_id in targets:
        records = ctx.ledger.records(job_id)
        state = ctx.ledger.state(job_id, records)
        if state == LedgerState.NONE:
            missing.append(job_id)
        prepared.append((job_id, records, state))
    if missing and job_ids:
        raise CutoverRequestError(
            "rollback refused, nothing changed: no cutover in the ledger "
            f"{ctx.ledger.url} for job(s) {', '.join(map(str, missing))}; check the job ids and the ledger_url"
        )
    outcomes = []
    for job_id, records, state in prepared:
        if state == LedgerState.NONE:
            outcomes.append(JobOutcome(job_id=job_id, job_name="", action="nothing to roll back", state=state))
            continue
        outcomes.append(
            _preview_one(job_id, records, state, ctx) if dry_run else _roll_back_one(job_id, records, state, ctx)
        )
    report = SwitchReport(operation="rollback", jobs=outcomes, dry_run=dry_run)
    failed = [o for o in outcomes if o.verification is not None and not o.verification.ok]
    if failed:
        lines = [f"job {o.job_id}: {'; '.join(o.verification.problems)}" for o in failed if o.verification]
        raise CutoverVerificationError(
            "rollback ran but the read-back does not match; rerun `dbt2prefect rollback`:\n" + "\n".join(lines)
        )
    return report
