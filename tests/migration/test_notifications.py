"""dbt Cloud job notifications → plan findings (sandbox/dbt_cloud/seed_notifications.json, the API's shape)."""

from __future__ import annotations

import json

import pytest

from dbt2prefect.tenant import REPO_ROOT, load_tenant
from migration.dbt_cloud.models import Notification
from migration.export import load_inventory
from migration.plan import Finding, MigrationPlan, Severity
from migration.translate import build_plan

SEED = REPO_ROOT / "sandbox" / "dbt_cloud"
NIGHTLY, HOURLY, WEEKLY, CHAINED, LEGACY = (
    70403103936332,
    70403103936340,
    70403103936347,
    70403103936373,
    70403103936380,
)


def _notifications(*extra: dict[str, object]) -> list[Notification]:
    raw = json.loads((SEED / "seed_notifications.json").read_text())["data"]
    return [Notification.from_api(item) for item in [*raw, *extra]]


def _plan(notifications: list[Notification]) -> MigrationPlan:
    inventory = load_inventory(SEED / "seed_jobs.json")
    return build_plan(
        inventory.job_models(), load_tenant(), inventory.environment_models(), notifications=notifications
    )


def _found(plan: MigrationPlan) -> list[Finding]:
    return [f for f in plan.findings if f.reason_code.startswith("notification")]


@pytest.fixture(scope="module")
def plan() -> MigrationPlan:
    extra = [
        {"id": 9, "type": 4, "state": 2, "external_email": "gone@example.com", "on_failure": [HOURLY]},
        {"id": 10, "type": 4, "state": 1, "external_email": "old@example.com", "on_failure": [LEGACY, 42]},
    ]
    return _plan(_notifications(*extra))


def test_each_job_and_destination_is_one_finding_with_the_automation_to_create(plan: MigrationPlan) -> None:
    nightly = [f for f in _found(plan) if f.job_id == NIGHTLY]
    assert len(nightly) == 2 and all(f.severity == Severity.WARNING for f in nightly)
    slack = next(f for f in nightly if "#data-alerts" in f.message)
    assert "fails or is cancelled" in slack.message
    assert "'job-70403103936332 *'" in slack.manual_step and "run_dbt_wg/dbt_wg" in slack.manual_step
    assert "Failed, Crashed, Cancelled" in slack.manual_step
    email = next(f for f in nightly if "data-oncall@williamgrant.example" in f.message)
    assert "warns" in email.message and "no state of its own" in email.manual_step
    chained = next(f for f in _found(plan) if f.job_id == CHAINED)
    assert "Completed, Failed, Crashed" in chained.manual_step


def test_an_internal_email_names_the_user_and_the_job(plan: MigrationPlan) -> None:
    unresolved = [f for f in _found(plan) if f.reason_code == "notification_unresolved"]
    assert [(f.job_id, f.job_name) for f in unresolved] == [(WEEKLY, "Weekly supply chain full refresh")]
    assert "dbt Cloud user 70403103911002" in unresolved[0].message
    assert "look up the address" in unresolved[0].manual_step


def test_deleted_settings_and_deleted_jobs_are_skipped_and_unknown_jobs_named(plan: MigrationPlan) -> None:
    messages = " ".join(f.message for f in _found(plan))
    assert "gone@example.com" not in messages  # the setting is deleted
    assert not any(f.job_id == LEGACY for f in _found(plan))  # the job is deleted
    unknown = next(f for f in _found(plan) if f.job_id == 42)
    assert unknown.job_name == "not in this inventory" and "old@example.com" in unknown.message


def test_without_notifications_the_plan_has_none() -> None:
    assert _found(_plan([])) == []
