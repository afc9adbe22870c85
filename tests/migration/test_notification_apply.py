"""Notification automations on a real Prefect API (the session's test server): data in their Jinja templates is
text, never code; a template Prefect would refuse stops apply before any change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dbt2prefect.names import is_notification_name
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.tenant import REPO_ROOT, TenantSettings, load_tenant
from migration.apply import ApplyError, apply_deployment
from migration.dbt_cloud.models import Notification
from migration.deployment import DeploymentSpec, build_deployment, pinned_versions
from migration.export import load_inventory
from migration.notifications import jinja_text
from migration.plan import MigrationPlan
from migration.translate import build_plan
from sandbox.stack import on_process_pool

SEED = REPO_ROOT / "sandbox" / "dbt_cloud"
VERSIONS = pinned_versions((REPO_ROOT / "constraints.txt").read_text())
NIGHTLY = 70403103936332
BLOCKS = {
    "slack:#data-alerts": "custom-webhook/nt-slack",
    "email:data-oncall@williamgrant.example": "custom-webhook/nt-email",
}
HOSTILE_NAMES = [
    "{{ flow_run.parameters }}",
    "{% if %} {{",
    "{# unclosed comment",
    "{% raw %}x{% endraw %}{{ 1/0 }}",
    "{%- endraw %} }} %} #}",
]


def _tenant(deployment: str) -> TenantSettings:
    return on_process_pool(load_tenant(), "wg-test-process", deployment_name=deployment, notifications=BLOCKS)


def _plan(deployment: str, names: dict[int, str] | None = None) -> MigrationPlan:
    inventory = load_inventory(SEED / "seed_jobs.json")
    jobs = [j.model_copy(update={"name": (names or {}).get(j.id, j.name)}) for j in inventory.job_models()]
    raw = json.loads((SEED / "seed_notifications.json").read_text())["data"]
    notifications = [Notification.from_api(item) for item in raw]
    return build_plan(jobs, _tenant(deployment), inventory.environment_models(), notifications=notifications)


def _spec(deployment: str, names: dict[int, str] | None = None) -> DeploymentSpec:
    return build_deployment(_plan(deployment, names), _tenant(deployment), versions=VERSIONS)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    from migration.apply import flow_parameter_schema

    return flow_parameter_schema(_spec("any").entrypoint)


@pytest.fixture(scope="module")
def blocks(prefect_api: None) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    for reference in BLOCKS.values():
        name = reference.split("/", 1)[1]
        CustomWebhookNotificationBlock(name=name, url="http://127.0.0.1:9/notify").save(name, overwrite=True)


def _automations(prefix: str, deployment: str) -> dict[str, Any]:
    """The automations named `prefix...` that watch `deployment` (other tests' deployments have automations of the
    same names), read page by page (the session's server holds more than one page)."""
    from migration.notification_automations import watches

    with connect_prefect() as prefect:
        found = prefect.read_automations()
    return {a.name: a for a in found if a.name.startswith(prefix) and watches(a, deployment)}


def _deployment_exists(full_name: str) -> bool:
    with connect_prefect() as prefect:
        return prefect.read_deployment(full_name) is not None


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_jinja_text_renders_to_itself_in_prefects_template_engine(name: str) -> None:
    from prefect.server.utilities.user_templates import render_user_template_sync, validate_user_template

    template = f"dbt job {jinja_text(name)}: {{{{ flow_run.name }}}}"
    validate_user_template(template)
    assert render_user_template_sync(template, {"flow_run": {"name": "job-1 x", "parameters": {"a": 1}}}) == (
        f"dbt job {name}: job-1 x"
    )


def test_a_job_name_that_looks_like_jinja_is_sent_as_text(blocks: None, schema: dict[str, Any]) -> None:
    from prefect.server.utilities.user_templates import register_user_template_filters, render_user_template_sync

    register_user_template_filters({"ui_url": lambda _: ""})  # what Prefect's actions register before rendering

    name = " ".join(HOSTILE_NAMES)
    spec = _spec("dbt_wg_jinja_names", {NIGHTLY: name})
    diff = apply_deployment(spec, create_pool=True, parameter_schema=schema)
    assert diff.applied and diff.deployment.status == "added"
    stored = _automations(f"job-{NIGHTLY}-notify-", "dbt_wg_jinja_names")
    assert stored, "the nightly job's notification automations exist"
    context = {"flow_run": {"name": "job-1 x", "parameters": {"secret": "p"}, "state": {"message": ""}}}
    for automation in stored.values():
        [action] = automation.actions
        subject = render_user_template_sync(action.subject, context)
        assert subject.startswith(f"dbt job {name}: ") and "'secret'" not in subject
        assert f"({name})" in render_user_template_sync(action.body, context)


def test_a_template_prefect_would_refuse_stops_apply_before_any_change(blocks: None, schema: dict[str, Any]) -> None:
    spec = _spec("dbt_wg_bad_template")
    broken = spec.notifications[0].model_copy(update={"body": "{% if %} {{"})
    spec = spec.model_copy(update={"notifications": [broken, *spec.notifications[1:]]})
    with pytest.raises(ApplyError, match=f"body of notification automation {broken.name} is not a template"):
        apply_deployment(spec, create_pool=True, parameter_schema=schema)
    assert not _deployment_exists(spec.full_name), "nothing was created"


def _names(automations: dict[str, Any] | list[Any]) -> list[str]:
    return sorted(a.name for a in (automations.values() if isinstance(automations, dict) else automations))


def _all_of(deployment: str) -> list[Any]:
    with connect_prefect() as prefect:
        found = prefect.read_deployment(f"run_dbt_wg/{deployment}")
        assert found is not None
        related = prefect.read_related_automations(found.id)
        every = prefect.read_automations()
    return [a for a in every if is_notification_name(a.name)] + [
        a for a in related if a.name.startswith("job-") and "-after-" in a.name
    ]


def _watching(deployment: str) -> list[str]:
    """Names of the notification automations watching `deployment` and of its triggers, duplicates included."""
    from migration.notification_automations import watches

    found = _all_of(deployment)
    unique = {str(a.id): a for a in found}.values()
    return sorted(a.name for a in unique if "-after-" in a.name or watches(a, deployment))


def test_two_applies_at_once_leave_one_automation_per_name(blocks: None, schema: dict[str, Any]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    spec = _spec("dbt_wg_concurrent")
    wanted = sorted([*(n.name for n in spec.notifications), *(t.name for t in spec.triggers)])
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(apply_deployment, spec, create_pool=True, parameter_schema=schema) for _ in range(2)]
        for run in runs:
            run.result()
    assert _watching("dbt_wg_concurrent") == wanted
    again = apply_deployment(spec, parameter_schema=schema)
    assert not again.has_changes, again


def test_apply_removes_a_duplicate_it_finds(blocks: None, schema: dict[str, Any]) -> None:
    from prefect.events.schemas.automations import AutomationCore

    from migration.notification_automations import watches

    spec = _spec("dbt_wg_duplicate")
    apply_deployment(spec, create_pool=True, parameter_schema=schema)
    original = spec.notifications[0].name

    with connect_prefect() as prefect:
        [automation] = [a for a in prefect.read_automations() if a.name == original and watches(a, "dbt_wg_duplicate")]
        prefect.create_automation(AutomationCore.model_validate(automation.model_dump(exclude={"id"})))
    assert _watching("dbt_wg_duplicate").count(original) == 2
    diff = apply_deployment(spec, parameter_schema=schema)
    assert diff.applied and [(c.slug, c.status, c.fields) for c in diff.notifications if c.fields] == [
        (original, "removed", ["duplicate"])
    ]
    assert _watching("dbt_wg_duplicate").count(original) == 1
    assert not apply_deployment(spec, parameter_schema=schema).has_changes


@pytest.mark.parametrize(
    ("run_name", "unnamed"),
    [("crafty-tiger", True), ("job-70403103936332 Nightly (crafty-tiger)", False), ("parity-job-1 x (y)", False)],
)
def test_before_start_automations_follow_only_runs_no_flow_has_named(run_name: str, unnamed: bool) -> None:
    from prefect.server.events.schemas.events import matches

    from dbt2prefect.names import UNNAMED_RUN

    spec = _spec("dbt_wg_unnamed")
    early = [n for n in spec.notifications if n.name.endswith("-before-start")]
    assert early and all(n.run_name == UNNAMED_RUN and n.states == ["Failed", "Crashed"] for n in early)
    assert matches(UNNAMED_RUN, run_name) is unnamed
