"""dbt Cloud job notifications → planned automations and findings (sandbox/dbt_cloud/seed_notifications.json, the
API's shape, with the blocks of tenants/dbt_williamgrant.toml)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dbt2prefect.run_events import RUN_WARNED_EVENT
from dbt2prefect.tenant import REPO_ROOT, TenantSettings, load_tenant
from migration.dbt_cloud.models import Notification
from migration.deployment import build_deployment, pinned_versions
from migration.export import load_inventory
from migration.plan import Finding, MigrationPlan, PlannedNotification, Severity
from migration.translate import build_plan

SEED = REPO_ROOT / "sandbox" / "dbt_cloud"
VERSIONS = pinned_versions((REPO_ROOT / "constraints.txt").read_text())
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


def _automations(plan: MigrationPlan, job_id: int) -> dict[str, PlannedNotification]:
    return {n.destination: n for n in plan.notifications if n.job_id == job_id}


def test_each_job_and_destination_with_a_block_becomes_an_automation_and_an_info_finding(plan: MigrationPlan) -> None:
    nightly = _automations(plan, NIGHTLY)
    slack, email = nightly["slack:#data-alerts"], nightly["email:data-oncall@williamgrant.example"]
    assert slack.name == "job-70403103936332-notify-70403103950002" and slack.block == "slack-webhook/wg-data-alerts"
    assert slack.states == ["Failed", "Crashed", "Cancelled"] and slack.events == []
    assert email.outcomes == ["on_failure", "on_warning"] and email.states == ["Failed", "Crashed"]
    assert email.events == [RUN_WARNED_EVENT] and email.switch_job_id == NIGHTLY
    infos = [f for f in _found(plan) if f.job_id == NIGHTLY]
    assert len(infos) == 2 and all(f.severity == Severity.INFO and f.reason_code == "notification" for f in infos)
    assert any(slack.name in f.message and "fails or is cancelled" in f.message for f in infos)
    assert any("a run with warnings" in f.message and "sendgrid-email/wg-data-oncall" in f.message for f in infos)


def test_a_job_that_only_runs_chained_is_notified_from_its_upstream_jobs_cutover(plan: MigrationPlan) -> None:
    chained = _automations(plan, CHAINED)["slack:#data-alerts"]
    assert chained.states == ["Completed", "Completed with warnings", "Failed", "Crashed"]
    assert chained.switch_job_id == NIGHTLY
    spec = build_deployment(plan, load_tenant(), versions=VERSIONS, active={NIGHTLY: True})
    switched = {n.name: n.enabled for n in spec.notifications}
    assert switched[chained.name] and switched[_automations(plan, NIGHTLY)["slack:#data-alerts"].name]
    assert not switched[_automations(plan, HOURLY)["email:data-oncall@williamgrant.example"].name]


def test_the_automation_is_what_the_prefect_api_takes_and_follows_the_jobs_runs(plan: MigrationPlan) -> None:
    from prefect.events.schemas.automations import AutomationCore

    spec = build_deployment(plan, load_tenant(), versions=VERSIONS)
    email = next(n for n in spec.notifications if n.job_id == NIGHTLY and n.events)
    body = email.automation(spec.name, "00000000-0000-0000-0000-000000000001")
    automation = AutomationCore.model_validate(body)
    trigger = automation.trigger.model_dump(mode="json")
    assert trigger["match"] == {
        "prefect.resource.id": "prefect.flow-run.*",
        "prefect.resource.name": "job-70403103936332 *",
    }
    assert trigger["match_related"] == {"prefect.resource.role": "deployment", "prefect.resource.name": "dbt_wg"}
    assert sorted(trigger["expect"]) == sorted(
        ["prefect.flow-run.Failed", "prefect.flow-run.Crashed", RUN_WARNED_EVENT]
    )
    assert not automation.enabled  # nothing is cut over: dbt Cloud still notifies
    [action] = automation.actions
    assert action.type == "send-notification" and "Nightly production build" in action.subject


def test_an_internal_email_names_the_user_the_job_and_the_line_that_resolves_it(plan: MigrationPlan) -> None:
    unresolved = [f for f in _found(plan) if f.reason_code == "notification_unresolved"]
    assert [(f.job_id, f.job_name) for f in unresolved] == [(WEEKLY, "Weekly supply chain full refresh")]
    assert "dbt Cloud user 70403103911002" in unresolved[0].message
    assert "look up the address" in unresolved[0].manual_step
    assert '"user:70403103911002" = "sendgrid-email/<block-name>"' in unresolved[0].manual_step
    tenant = load_tenant().model_copy(update={"notifications": {"user:70403103911002": "sendgrid-email/ops"}})
    inventory = load_inventory(SEED / "seed_jobs.json")
    resolved = build_plan(inventory.job_models(), tenant, notifications=_notifications())
    assert [n.block for n in resolved.notifications if n.job_id == WEEKLY] == ["sendgrid-email/ops"]


def test_a_destination_without_a_block_says_which_setting_to_add() -> None:
    inventory = load_inventory(SEED / "seed_jobs.json")
    tenant = load_tenant().model_copy(update={"notifications": {}})
    plan = build_plan(inventory.job_models(), tenant, notifications=_notifications())
    assert plan.notifications == []
    missing = [f for f in _found(plan) if f.reason_code == "notification_block" and f.job_id == NIGHTLY]
    assert len(missing) == 2 and all(f.severity == Severity.WARNING for f in missing)
    assert any('"slack:#data-alerts" = "slack-webhook/<block-name>"' in f.manual_step for f in missing)
    assert all("[tenant.notifications]" in f.manual_step for f in missing)


def test_deleted_settings_and_deleted_jobs_are_skipped_and_unknown_jobs_named(plan: MigrationPlan) -> None:
    messages = " ".join(f.message for f in _found(plan))
    assert "gone@example.com" not in messages  # the setting is deleted
    assert not any(f.job_id == LEGACY for f in _found(plan))  # the job is deleted
    unknown = next(f for f in _found(plan) if f.job_id == 42)
    assert unknown.job_name == "not in this inventory" and "old@example.com" in unknown.message
    assert "not migrated" in unknown.message and not any(n.job_id == 42 for n in plan.notifications)


def test_without_notifications_the_plan_has_none() -> None:
    empty = _plan([])
    assert _found(empty) == [] and empty.notifications == []


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"teams:#x": "slack-webhook/a"}, "'teams:#x'"),
        ({"slack:#x": "a-block-without-a-type"}, "'<block-type-slug>/<block-name>'"),
        ({"slack:": "slack-webhook/a"}, "'slack:'"),
    ],
)
def test_a_bad_notifications_setting_names_itself_and_the_form(setting: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=r"tenant\.notifications") as caught:
        TenantSettings.model_validate({**load_tenant().model_dump(), "notifications": setting})
    assert named in str(caught.value)


def _rendered(template: str, event: object, flow_run: object) -> str:
    """`template` as Prefect's notification action renders it (its template environment and filters)."""
    from prefect.server.events.actions import JinjaTemplateAction
    from prefect.server.utilities.user_templates import render_user_template_sync

    JinjaTemplateAction._register_filters_if_needed()
    return render_user_template_sync(template, {"event": event, "flow_run": flow_run})


def test_a_warned_runs_notification_names_the_warned_nodes(plan: MigrationPlan) -> None:
    from uuid import uuid4

    from prefect.client.schemas.objects import FlowRun, State, StateType

    from dbt2prefect.dbt_run import NodeResult, StepOutcome
    from dbt2prefect.run_events import LISTED_NODES, WARNED_RUN_STATE, warned_event
    from dbt2prefect.summary import summarize

    spec = build_deployment(plan, load_tenant(), versions=VERSIONS)
    email = next(n for n in spec.notifications if n.job_id == NIGHTLY and n.events)
    nodes = [
        NodeResult(f"test.p.warns_{i:02}", "test", f"warns_{i:02}", "warn", 0.1, "Got 1 result", 0)
        for i in range(LISTED_NODES + 2)
    ]
    outcome = StepOutcome(0, "dbt build", "build", ["build"], REPO_ROOT, True, success=True, nodes=nodes)
    running = FlowRun(id=uuid4(), name="job-1 Nightly (brave-fox)", flow_id=uuid4(), deployment_id=uuid4())
    event = warned_event(summarize("prod", [outcome], success=True), running, "run_dbt_wg", "dbt_wg", job_id=1)
    assert event is not None

    body = _rendered(email.body, event, running)
    assert _rendered(email.subject, event, running) == "dbt job Nightly production build: Completed with warnings"
    listed = ", ".join(node.unique_id for node in nodes[:LISTED_NODES])
    assert f"Warned nodes ({LISTED_NODES + 2}): {listed} and 2 more\n" in body, body

    # A state event (the run's failure, or its end as Completed with warnings) has no such line: the run's state
    # message names the nodes there.
    done = State(type=StateType.COMPLETED, name=WARNED_RUN_STATE, message="2 nodes warned: test.p.a, test.p.b")
    ended = running.model_copy(update={"state": done})
    slack = next(n for n in spec.notifications if n.job_id == CHAINED)
    state_event = event.model_copy(update={"event": f"prefect.flow-run.{WARNED_RUN_STATE}", "payload": {}})
    body = _rendered(slack.body, state_event, ended)
    assert "Warned nodes" not in body and "2 nodes warned: test.p.a, test.p.b" in body, body
    assert _rendered(slack.subject, state_event, ended).endswith(": Completed with warnings")
