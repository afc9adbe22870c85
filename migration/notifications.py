"""dbt Cloud job notifications (v2 `notifications/`) → plan findings, one per job and destination. Pure.

A notification setting names one destination (an internal user, an external email address, a Slack channel) and,
per run outcome, the jobs whose runs tell it. Under Prefect the same is an automation on the job's flow runs
(named `job-<id> ...`, see `dbt2prefect.job_identity`) entering the outcome's states, whose action sends through a
notification block for that destination; each finding gives those exact parts. An internal user's email has no
address in the API: that finding names the user and the jobs, so a person can look the address up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dbt2prefect.job_identity import run_name_prefix
from dbt2prefect.tenant import TenantSettings
from migration.dbt_cloud.models import Job, Notification, NotificationType
from migration.plan import Finding, Severity

ACTIVE = 1
OUTCOME_STATES: dict[str, tuple[str, ...]] = {
    "on_success": ("Completed",),
    "on_failure": ("Failed", "Crashed"),
    "on_cancel": ("Cancelled",),
}
"""dbt Cloud run outcome → the final Prefect states of a flow run that dbt Cloud would report with it."""
_OUTCOME_WORDS = {"on_success": "succeeds", "on_failure": "fails", "on_cancel": "is cancelled", "on_warning": "warns"}
_OUTCOMES = ("on_success", "on_failure", "on_warning", "on_cancel")


@dataclass(frozen=True)
class _Destination:
    kind: str
    label: str
    resolved: bool


def _destination(notification: Notification) -> _Destination:
    kind = notification.type
    if kind in (NotificationType.SLACK, NotificationType.SLACK_V2):
        channel = notification.slack_channel_name or notification.slack_channel_id or "?"
        return _Destination("Slack", f"Slack channel {channel}", True)
    if kind == NotificationType.EXTERNAL_EMAIL and notification.external_email:
        return _Destination("email", f"email {notification.external_email}", True)
    if kind == NotificationType.INTERNAL_EMAIL:
        return _Destination("email", f"dbt Cloud user {notification.user_id} (internal email)", False)
    if kind == NotificationType.WEBHOOK:
        return _Destination("webhook", f"webhook notification {notification.id} (deprecated type)", True)
    return _Destination("unknown", f"notification {notification.id} of type {kind}", False)


def notification_findings(
    notifications: Iterable[Notification], jobs: Mapping[int, Job], tenant: TenantSettings
) -> list[Finding]:
    """One finding per job and destination of the active notification settings (ordered by job, then setting).

    Args:
        notifications: the account's notification settings (deleted ones are skipped).
        jobs: the inventory's jobs by id; a job a setting names that is not there is named by id.
        tenant: gives the deployment the automations watch.
    """
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
            findings.append(_finding(job_id, job, outcomes, destination, notification, tenant))
    return sorted(findings, key=lambda f: f.job_id)


def _finding(
    job_id: int,
    job: Job | None,
    outcomes: list[str],
    destination: _Destination,
    notification: Notification,
    tenant: TenantSettings,
) -> Finding:
    when = " or ".join(_OUTCOME_WORDS[o] for o in outcomes)
    message = f"dbt Cloud tells {destination.label} when the job's run {when} (notification {notification.id})"
    states = [state for o in outcomes for state in OUTCOME_STATES.get(o, ())]
    automation = (
        f"create a Prefect automation: trigger on flow runs named '{run_name_prefix(job_id)}*' of deployment "
        f"{tenant.flow_name}/{tenant.deployment_name} entering {', '.join(states) or '-'}; action 'Send a "
        f"notification' through a notification block ({destination.kind}) for {destination.label}"
    )
    if "on_warning" in outcomes:
        automation += (
            "; a run with warnings ends Completed in Prefect (no state of its own): cover it with the "
            "Completed trigger or drop it"
        )
    if destination.resolved:
        code, step = "notification", automation
    else:
        code = "notification_unresolved"
        step = f"look up the address of {destination.label} in dbt Cloud (Account settings > Users), then {automation}"
    return Finding(
        reason_code=code,
        severity=Severity.WARNING,
        job_id=job_id,
        job_name=job.name if job is not None else "not in this inventory",
        message=message,
        manual_step=step,
    )
