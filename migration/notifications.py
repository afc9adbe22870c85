"""dbt Cloud job notifications (v2 `notifications/`) → Prefect automations on the jobs' runs. Pure.

A notification setting names one destination (an internal user, an external email address, a Slack channel) and,
per run outcome, the jobs whose runs tell it. Under Prefect the same is one automation per setting and job,
`job-<id>-notify-<setting id>`: its trigger is the job's flow runs (named `job-<id> ...`, see
`dbt2prefect.names`) of the deployment entering the outcomes' states, or emitting `dbt2prefect.run.warned`
(a run that ends Completed with warnings), and its action sends through the notification block that
`[tenant.notifications]` names for the destination. A destination with no block there is a finding that says
which line to add; an internal user's email has no address in the API, so that finding names the user and jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dbt2prefect.names import before_start_name, notification_name
from dbt2prefect.reasons import ReasonCode
from dbt2prefect.run_events import RUN_WARNED_EVENT, WARNED_RUN_STATE
from dbt2prefect.tenant import TenantSettings
from migration.dbt_cloud.models import Job, Notification, NotificationType
from migration.plan import Finding, PlannedJob, PlannedNotification, Severity

ACTIVE = 1
OUTCOME_STATES: dict[str, tuple[str, ...]] = {
    "on_success": ("Completed", WARNED_RUN_STATE),
    "on_failure": ("Failed", "Crashed"),
    "on_cancel": ("Cancelled",),
}
"""dbt Cloud run outcome → the final Prefect states of a flow run that dbt Cloud would report with it."""
OUTCOME_EVENTS: dict[str, tuple[str, ...]] = {"on_warning": (RUN_WARNED_EVENT,)}
"""dbt Cloud run outcome → the events the flow emits for it (a Completed run with warnings has no state of its own)."""
_OUTCOME_WORDS = {"on_success": "succeeds", "on_failure": "fails", "on_cancel": "is cancelled", "on_warning": "warns"}
_OUTCOMES = ("on_success", "on_failure", "on_warning", "on_cancel")
_EXAMPLE_BLOCK = {
    "slack": "slack-webhook",
    "email": "sendgrid-email",
    "user": "sendgrid-email",
    "webhook": "custom-webhook",
}
BEFORE_START_STATES = ("Failed", "Crashed")
"""The states of a run that died before its flow started (a failed pull step, a crashed process or container)."""


def jinja_text(value: str) -> str:
    """`value` as Jinja template text that renders to exactly `value`: the one escape for data (job names,
    destinations, deployment names) that lands in a notification automation's subject or body.

    Every Jinja tag (`{{`, `{%`, `{#`) starts with `{`, so each `{` becomes the expression `{{ '{' }}`.
    """
    return value.replace("{", "{{ '{' }}")


@dataclass(frozen=True)
class BeforeStartGroup:
    """The jobs of one notification setting whose failures it tells: one before-start automation."""

    name: str
    notification_id: int
    destination: str
    block: str
    jobs: tuple[tuple[int, str], ...]
    """(job id, job name) of each job."""
    switch_job_ids: tuple[int, ...]
    """The jobs whose cutover turns it on (a job that only runs chained: its upstream job)."""


def before_start_groups(planned: Iterable[PlannedNotification]) -> list[BeforeStartGroup]:
    """One group per notification setting with a job whose failures it tells, from the plan's automations.

    A run that dies before the flow starts cannot be told apart by job in Prefect's events (its name is still
    the generated one, a schedule gives its runs no tags of their own), so each setting that tells failures
    gets one automation on all such runs of the deployment; its message names the job from the run's parameters.
    """
    by_setting: dict[int, list[PlannedNotification]] = {}
    for automation in planned:
        if "on_failure" in automation.outcomes:
            by_setting.setdefault(automation.notification_id, []).append(automation)
    return [
        BeforeStartGroup(
            name=before_start_name(notification_id),
            notification_id=notification_id,
            destination=group[0].destination,
            block=group[0].block,
            jobs=tuple(sorted({(a.job_id, a.job_name) for a in group})),
            switch_job_ids=tuple(sorted({a.switch_job_id for a in group})),
        )
        for notification_id, group in sorted(by_setting.items())
    ]


@dataclass(frozen=True)
class _Destination:
    keys: tuple[str, ...]
    """How `[tenant.notifications]` may name it, preferred first."""
    label: str
    address_known: bool


def _destination(notification: Notification) -> _Destination:
    kind = notification.type
    if kind in (NotificationType.SLACK, NotificationType.SLACK_V2):
        names = [n for n in (notification.slack_channel_name, notification.slack_channel_id) if n]
        channel = names[0] if names else "?"
        return _Destination(tuple(f"slack:{n}" for n in names), f"Slack channel {channel}", bool(names))
    if kind == NotificationType.EXTERNAL_EMAIL and notification.external_email:
        return _Destination((f"email:{notification.external_email}",), f"email {notification.external_email}", True)
    if kind == NotificationType.INTERNAL_EMAIL:
        user = f"user:{notification.user_id}"
        return _Destination((user,), f"dbt Cloud user {notification.user_id} (internal email)", False)
    if kind == NotificationType.WEBHOOK:
        hook = f"webhook:{notification.id}"
        return _Destination((hook,), f"webhook notification {notification.id} (deprecated type)", True)
    return _Destination((f"webhook:{notification.id}",), f"notification {notification.id} of type {kind}", False)


def plan_notifications(
    notifications: Iterable[Notification],
    jobs: Mapping[int, Job],
    planned: Mapping[int, PlannedJob],
    tenant: TenantSettings,
    upstream: Mapping[int, int] | None = None,
) -> tuple[list[PlannedNotification], list[Finding]]:
    """Each active setting's outcomes per job: an automation when the job runs on the deployment and the
    destination has a block, and one finding per job and setting that says what became of it.

    Args:
        notifications: the account's notification settings (deleted ones are skipped).
        jobs: the inventory's jobs by id; a job a setting names that is not there is named by id.
        planned: what the plan made of each job (only jobs with parameters run on the deployment).
        tenant: its `[tenant.notifications]` names the blocks; the deployment the automations watch.
        upstream: chained job id -> its upstream job id (the plan's triggers): a job that only runs chained
            is notified once its upstream job is cut over, since from then on its runs are Prefect's.
    """
    automations: list[PlannedNotification] = []
    findings: list[Finding] = []
    for notification in sorted(notifications, key=lambda n: n.id):
        if notification.state != ACTIVE:
            continue
        destination = _destination(notification)
        outcomes_by_job: dict[int, list[str]] = {}
        for outcome in _OUTCOMES:
            for job_id in getattr(notification, outcome):
                outcomes_by_job.setdefault(job_id, []).append(outcome)
        for job_id, outcomes in outcomes_by_job.items():
            job = jobs.get(job_id)
            if job is not None and job.is_deleted:
                continue
            entry = planned.get(job_id)
            chained = entry is not None and entry.status == "chained"
            switch = (upstream or {}).get(job_id, job_id) if chained else job_id
            automation, finding = _plan_one(job_id, job, entry, outcomes, destination, notification, tenant, switch)
            findings.append(finding)
            if automation is not None:
                automations.append(automation)
    return sorted(automations, key=lambda a: (a.job_id, a.name)), sorted(findings, key=lambda f: f.job_id)


def _plan_one(
    job_id: int,
    job: Job | None,
    planned: PlannedJob | None,
    outcomes: list[str],
    destination: _Destination,
    notification: Notification,
    tenant: TenantSettings,
    switch_job_id: int,
) -> tuple[PlannedNotification | None, Finding]:
    when = " or ".join(_OUTCOME_WORDS[o] for o in outcomes)
    message = f"dbt Cloud tells {destination.label} when the job's run {when} (notification {notification.id})"
    job_name = job.name if job is not None else "not in this inventory"
    name = notification_name(job_id, notification.id)

    def finding(code: ReasonCode, severity: Severity, detail: str, step: str) -> Finding:
        return Finding(
            reason_code=code,
            severity=severity,
            job_id=job_id,
            job_name=job_name,
            message=f"{message}; {detail}",
            manual_step=step,
        )

    if planned is None or planned.parameters is None:
        status = "it is not in this inventory" if planned is None else f"its plan status is {planned.status}"
        return None, finding(
            ReasonCode.NOTIFICATION,
            Severity.WARNING,
            f"not migrated: the job does not run on the deployment ({status})",
            "nothing runs this job under Prefect, so nothing notifies; drop the notification, or migrate the job "
            "first and plan again",
        )
    block = next((tenant.notifications[k] for k in destination.keys if k in tenant.notifications), None)
    key = destination.keys[0]
    settings = str(tenant.settings_file) if tenant.settings_file else "the tenant settings file"
    if block is None:
        example = _EXAMPLE_BLOCK[key.partition(":")[0]]
        add = (
            f'add "{key}" = "{example}/<block-name>" under [tenant.notifications] in {settings}, save that Prefect '
            f"notification block (prefect block create {example}), and plan again: apply then creates the "
            f"automation {name}"
        )
        if not destination.address_known:
            return None, finding(
                ReasonCode.NOTIFICATION_UNRESOLVED,
                Severity.WARNING,
                "the API gives no address for it",
                f"look up the address of {destination.label} in dbt Cloud (Account settings > Users), then {add}",
            )
        return None, finding(
            ReasonCode.NOTIFICATION_BLOCK, Severity.WARNING, "no notification block is named for it", add
        )
    states = [state for o in outcomes for state in OUTCOME_STATES.get(o, ())]
    events = [event for o in outcomes for event in OUTCOME_EVENTS.get(o, ())]
    automation = PlannedNotification(
        name=name,
        job_id=job_id,
        job_name=job_name,
        notification_id=notification.id,
        destination=key,
        outcomes=outcomes,
        states=states,
        events=events,
        block=block,
        switch_job_id=switch_job_id,
    )
    watched = ", ".join([*states, *(["a run with warnings"] if events else [])])
    return automation, finding(
        ReasonCode.NOTIFICATION,
        Severity.INFO,
        f"migrated as the automation {name} (runs of the job on {tenant.flow_name}/{tenant.deployment_name} "
        f"entering {watched} send through block {block})",
        "nothing to do; cutover and rollback switch the automation with the job"
        + (
            ""
            if switch_job_id == job_id
            else f" it is chained to ({switch_job_id}): from then on its runs are Prefect's"
        ),
    )
