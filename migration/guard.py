"""The guarded window: the first Prefect runs of a job after its cutover are watched, and a failure that dbt Cloud
did not have undoes the cutover (or tells the job's destinations).

When a run of the deployment ends Failed or Crashed, the guard flow (`flows/guard_flow.py`, started by the
deployment's guard trigger) calls `guard_failed_run` with the run's id. It gathers the facts (the run, the job it
runs, where the ledger says the job stands, how many Prefect runs of the job started since its cutover, dbt Cloud's
last runs of the job before cutover), and `decide` (pure) says what to do:

- nothing, when the run is not a failed run of a cut-over job inside its first `guarded_runs` runs, or when dbt
  Cloud's recent runs failed as well (the failure is not new), or when the ledger already holds the guard's record
  of this run (a second event for the same run);
- else `guard_action`: `notify` sends a message through each notification block of the job's notification
  automations; `rollback` also rolls the job back (`migration.rollback`, recorded with `by = "guard"`).

Either way a `guard_tripped` ledger record, naming the run, is written before anything is switched or sent: it
makes the guard act once per run. A rollback the guard started and that did not finish is resumed by the next
event of the same run (rollback is idempotent), or by `dbt2prefect rollback`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.errors import ParameterError
from dbt2prefect.names import notification_ids, run_name_job, tag_job_id
from dbt2prefect.prefect_gateway import PrefectApiError, PrefectGateway
from dbt2prefect.tenant import ShadowSettings
from migration.ledger import Ledger, LedgerRecord, LedgerState, RecordKind, new_operation_id
from migration.notification_automations import notification_automations
from migration.rollback import rollback
from migration.switch_context import SwitchContext, SwitchReport

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

GUARD_BY = "guard"
"""Who the ledger says acted, on the records the guard writes and on the rollbacks it starts."""
RECENT_DBT_CLOUD_RUNS = 5
"""How many of dbt Cloud's last finished runs of the job before its cutover say whether a failure is new."""
FAILED_STATES = ("FAILED", "CRASHED")
"""The final state types of a run the guard looks at."""
RUN_SCAN = 200
"""How many of the deployment's newest runs are read to count a job's runs since its cutover."""
_NOT_YET_RUN = ("SCHEDULED", "PENDING")

GuardAction = Literal["none", "notify", "rollback", "resume rollback"]


@dataclass(frozen=True)
class GuardFacts:
    """What the guard knows about one finished run (gathered by `gather_facts`, or written by hand in tests).

    Attributes:
        run_id: the Prefect flow run.
        state: its state type (`FAILED`, `CRASHED`, `COMPLETED`...).
        job_id: the dbt Cloud job it runs, or None for a run of no job.
        parity_run: whether it is a parity candidate run (never guarded: it does not replace a dbt Cloud run).
        ledger_state: where the ledger says the job stands.
        cut_over_at: when the job's current cutover started, None when it has none.
        run_started: when the run started (or was due to, for one that never started).
        run_number: its place among the job's Prefect runs since cutover (1: the first); None when those runs
            could not all be read (more than `RUN_SCAN` runs of the deployment since).
        dbt_cloud_failed: for dbt Cloud's last finished runs of the job before cutover, newest first, whether each
            failed.
        tripped: the guard's earlier record of this run, if any.
        rollback_open: with `tripped`, whether the rollback it started is not finished (and no cutover came since).
        settings: `guarded_runs` and `guard_action`.
    """

    run_id: str
    state: str
    job_id: int | None
    parity_run: bool
    ledger_state: LedgerState
    cut_over_at: datetime | None
    run_started: datetime | None
    run_number: int | None
    dbt_cloud_failed: tuple[bool, ...]
    tripped: LedgerRecord | None
    rollback_open: bool
    settings: ShadowSettings


@dataclass(frozen=True)
class GuardDecision:
    """What the guard does about a run, and why (the reason goes to the ledger and the notification)."""

    action: GuardAction
    reason: str


def decide(facts: GuardFacts) -> GuardDecision:
    """What the guard does about a finished run. Pure: every input is in `facts`."""
    settings = facts.settings
    if facts.tripped is not None:
        if facts.rollback_open:
            return GuardDecision("resume rollback", f"the guard's rollback after run {facts.run_id} is unfinished")
        return GuardDecision("none", f"run {facts.run_id} was handled already (ledger record {facts.tripped.seq})")
    if facts.job_id is None:
        return GuardDecision("none", f"run {facts.run_id} runs no dbt Cloud job")
    job = f"job {facts.job_id}"
    if facts.parity_run:
        return GuardDecision("none", f"run {facts.run_id} is a parity run of {job}, not one that replaces dbt Cloud")
    if facts.state not in FAILED_STATES:
        return GuardDecision("none", f"run {facts.run_id} of {job} ended {facts.state.title()}")
    if facts.ledger_state != LedgerState.CUT_OVER or facts.cut_over_at is None:
        return GuardDecision("none", f"{job} is not cut over (ledger: {facts.ledger_state.value})")
    if facts.run_started is not None and facts.run_started < facts.cut_over_at:
        return GuardDecision("none", f"run {facts.run_id} of {job} started before its cutover")
    if settings.guarded_runs == 0:
        return GuardDecision("none", "the guarded window is off ([tenant.shadow] guarded_runs = 0)")
    window = f"the guarded window is the first {settings.guarded_runs} run(s) after cutover"
    if facts.run_number is None:
        return GuardDecision("none", f"the runs of {job} since its cutover are too many to count: {window}")
    if facts.run_number > settings.guarded_runs:
        return GuardDecision("none", f"run {facts.run_number} of {job} since its cutover; {window}")
    failed = sum(facts.dbt_cloud_failed)
    seen = len(facts.dbt_cloud_failed)
    if failed:
        return GuardDecision(
            "none", f"{failed} of dbt Cloud's last {seen} run(s) of {job} before cutover failed too: not a new failure"
        )
    history = (
        f"dbt Cloud's last {seen} run(s) of it before cutover succeeded"
        if seen
        else "dbt Cloud has no finished run of it before cutover"
    )
    return GuardDecision(
        settings.guard_action,
        f"run {facts.run_number} of {settings.guarded_runs} guarded after the cutover of {job} ended "
        f"{facts.state.title()}, where {history}",
    )


# ----------------------------------------------------------------------------------------- facts


def parse_run_id(value: str) -> UUID:
    """The flow run id of `value`: an id, or an event resource id `prefect.flow-run.<id>`.

    Raises:
        ParameterError: neither.
    """
    text = value.strip().removeprefix("prefect.flow-run.")
    try:
        return UUID(text)
    except ValueError:
        raise ParameterError(
            f"flow_run_id {value!r} is not a flow run id; pass the failed run's id (or `prefect.flow-run.<id>`)"
        ) from None


def run_job(run: FlowRun) -> tuple[int | None, bool]:
    """(the dbt Cloud job a run of the deployment runs, whether it is a parity candidate run), from its parameters
    (set by its schedule or trigger), else its tags, else its name."""
    parameters = run.parameters or {}
    job_id = parameters.get("dbt_cloud_job_id")
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        return job_id, bool(parameters.get("parity_candidate"))
    for tag in run.tags or []:
        tagged = tag_job_id(tag)
        if tagged is not None:
            return tagged, bool(parameters.get("parity_candidate"))
    named = run_name_job(run.name)
    return (named[0], named[1]) if named else (None, False)


def _run_time(run: FlowRun) -> datetime | None:
    return run.start_time or run.expected_start_time


def _state_type(run: FlowRun) -> str:
    return run.state.type.value if run.state is not None else "UNKNOWN"


def _tripped(records: list[LedgerRecord], run_id: str, state: LedgerState) -> tuple[LedgerRecord | None, bool]:
    """The guard's record of the run, and whether the rollback it started is still open (no cutover since)."""
    for index, record in enumerate(records):
        if record.kind == RecordKind.GUARD_TRIPPED and record.guard_run == run_id:
            cut_over_again = any(r.kind == RecordKind.CUTOVER_STARTED for r in records[index + 1 :])
            still_open = record.guard_action == "rollback" and not cut_over_again and state != LedgerState.ROLLED_BACK
            return record, still_open
    return None, False


def _run_number(runs: list[FlowRun], run: FlowRun, job_id: int, since: datetime, guarded_runs: int) -> int | None:
    """The run's place among the job's runs that started at or after `since` (1: the first), counted in `runs`
    (the deployment's newest ones). None when `runs` may miss some of them and the count does not already pass
    the window."""
    at = _run_time(run)
    count = 1  # the run itself
    for other in runs:
        when = _run_time(other)
        if other.id == run.id or _state_type(other) in _NOT_YET_RUN or run_job(other) != (job_id, False):
            continue
        if when is not None and when >= since and (at is None or when <= at):
            count += 1
    times = [t for t in (_run_time(r) for r in runs) if t is not None]
    may_miss = len(runs) >= RUN_SCAN and (not times or min(times) >= since)
    return None if may_miss and count <= guarded_runs else count


def _utc(moment: datetime) -> datetime:
    """dbt Cloud's run times are UTC; one without an offset is read as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _dbt_cloud_failed(ctx: SwitchContext, job_id: int, before: datetime) -> tuple[bool, ...]:
    finished = (RunStatus.SUCCESS, RunStatus.ERROR)
    runs = ctx.dbt_cloud.list_runs(job_definition_id=job_id, order_by="-id")
    recent = [r for r in runs if r.status in finished and r.finished_at is not None and _utc(r.finished_at) <= before]
    return tuple(r.status == RunStatus.ERROR for r in recent[:RECENT_DBT_CLOUD_RUNS])


def gather_facts(run_id: UUID, ctx: SwitchContext, settings: ShadowSettings) -> GuardFacts:
    """The facts of a finished run, read from Prefect, the ledger and dbt Cloud. The deployment's runs and dbt
    Cloud are read only for a failed run of a cut-over job that the guard has not handled yet.

    Raises:
        ParameterError: the run does not exist on the Prefect API.
    """
    gateway = _gateway(ctx)
    run = gateway.read_flow_run(run_id)
    if run is None:
        raise ParameterError(f"flow run {run_id} does not exist on {gateway.api_url}; pass the id of a finished run")
    deployment_id = ctx.prefect.deployment_id(gateway)
    ours = deployment_id is not None and run.deployment_id == deployment_id
    job_id, parity_run = run_job(run) if ours else (None, False)
    facts: dict[str, Any] = {
        "run_id": str(run_id),
        "state": _state_type(run),
        "job_id": job_id,
        "parity_run": parity_run,
        "ledger_state": LedgerState.NONE,
        "cut_over_at": None,
        "run_started": _run_time(run),
        "run_number": None,
        "dbt_cloud_failed": (),
        "tripped": None,
        "rollback_open": False,
        "settings": settings,
    }
    if job_id is None or deployment_id is None:
        return GuardFacts(**facts)
    records = ctx.ledger.records(job_id)
    state = ctx.ledger.state(job_id, records)
    started = Ledger.last_of(records, RecordKind.CUTOVER_STARTED)
    facts["ledger_state"] = state
    facts["cut_over_at"] = started.at if started is not None else None
    facts["tripped"], facts["rollback_open"] = _tripped(records, str(run_id), state)
    watched = (
        facts["tripped"] is None
        and not parity_run
        and facts["state"] in FAILED_STATES
        and state == LedgerState.CUT_OVER
        and started is not None
        and settings.guarded_runs > 0
    )
    if watched and started is not None:
        runs = gateway.read_flow_runs(deployment_id, started_only=False, limit=RUN_SCAN)
        facts["run_number"] = _run_number(runs, run, job_id, started.at, settings.guarded_runs)
        facts["dbt_cloud_failed"] = _dbt_cloud_failed(ctx, job_id, started.at)
    return GuardFacts(**facts)


def _gateway(ctx: SwitchContext) -> PrefectGateway:
    if ctx.prefect.gateway is None:
        raise PrefectApiError("the guard reads Prefect through the workspace's gateway; none was given")
    return ctx.prefect.gateway


# ----------------------------------------------------------------------------------------- acting


@dataclass(frozen=True)
class GuardOutcome:
    """What the guard did about a run.

    Attributes:
        decision: what it decided, and why.
        job_id: the job the run runs (None for a run of no job).
        record: the `guard_tripped` ledger record it wrote (None when it did nothing, or resumed a rollback).
        rollback: the rollback it ran, if any.
        notified: the notification automations whose blocks it sent through.
    """

    decision: GuardDecision
    job_id: int | None
    record: LedgerRecord | None = None
    rollback: SwitchReport | None = None
    notified: tuple[str, ...] = ()


def _message(facts: GuardFacts, decision: GuardDecision, run_name: str, deployment: str) -> tuple[str, str]:
    done = (
        "rolled back: its dbt Cloud schedule is on again, its Prefect schedule and automations are off"
        if decision.action == "rollback"
        else "left cut over (guard_action = notify): check the run, and roll back with "
        f"`dbt2prefect rollback --job {facts.job_id}` if needed"
    )
    subject = f"dbt job {facts.job_id}: run {run_name} failed after cutover; {decision.action}"
    body = (
        f"Run {run_name} ({facts.run_id}) of {deployment}: {decision.reason}.\ndbt Cloud job {facts.job_id} was {done}."
    )
    return subject, body


def _notify(ctx: SwitchContext, job_id: int, subject: str, body: str) -> tuple[str, ...]:
    """Send through the block of each notification automation of the job (each block once)."""
    gateway = _gateway(ctx)
    deployment_name = ctx.prefect.deployment.rsplit("/", 1)[-1]
    sent: dict[str, str] = {}
    for name, automation in sorted(notification_automations(gateway, deployment_name).items()):
        ids = notification_ids(name)
        if ids is None or ids[0] != job_id:
            continue
        for action in automation.actions:
            block = action.model_dump(mode="json").get("block_document_id")
            if action.type == "send-notification" and block and block not in sent.values():
                gateway.send_notification(UUID(str(block)), subject, body)
                sent[name] = str(block)
    return tuple(sent)


def guard_failed_run(flow_run_id: str, ctx: SwitchContext, settings: ShadowSettings) -> GuardOutcome:
    """Decide about a finished run of the deployment and act: write the `guard_tripped` record, roll back (in
    `rollback` mode), notify the job's destinations. `ctx.by` should be `GUARD_BY`.

    Raises:
        ParameterError: `flow_run_id` is not an id, or no such run exists.
        CutoverVerificationError: the rollback ran but the read-back does not match (rerun to resume).
        DbtCloudApiError, PrefectApiError, LedgerError: a service failed; a new event of the run resumes.
    """
    run_id = parse_run_id(flow_run_id)
    facts = gather_facts(run_id, ctx, settings)
    decision = decide(facts)
    job_id = facts.job_id
    if decision.action == "none" or job_id is None:
        return GuardOutcome(decision, job_id)
    if decision.action == "resume rollback":
        return GuardOutcome(decision, job_id, rollback=rollback((job_id,), ctx))
    now = ctx.clock()
    record = ctx.ledger.append(
        LedgerRecord(
            tenant=ctx.tenant,
            job_id=job_id,
            seq=0,
            kind=RecordKind.GUARD_TRIPPED,
            operation=new_operation_id("guard", now),
            at=now,
            by=ctx.by,
            reason=decision.reason,
            guard_run=facts.run_id,
            guard_action=settings.guard_action,
        )
    )
    report = rollback((job_id,), ctx) if decision.action == "rollback" else None
    run = _gateway(ctx).read_flow_run(run_id)
    subject, body = _message(facts, decision, run.name if run is not None else facts.run_id, ctx.prefect.deployment)
    notified = _notify(ctx, job_id, subject, body)
    return GuardOutcome(decision, job_id, record=record, rollback=report, notified=notified)
