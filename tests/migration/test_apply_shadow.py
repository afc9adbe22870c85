"""apply of the shadow deployment against a real Prefect API (the session's test server): made only while shadowing
is on, idempotent, its trigger turned off with the setting; a completed-run event starts it with the event's run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.tenant import TenantSettings, load_tenant
from migration.apply import ApplyDiff, apply_deployment
from migration.dbt_cloud.models import Job
from migration.deployment import SHADOW_ENTRYPOINT, build_deployment
from migration.emit import prefect_yaml_document
from migration.shadow_feed import RunCompleted
from migration.translate import build_plan
from sandbox.stack import on_process_pool

FIXTURES = Path(__file__).parent / "fixtures"
DEPLOYMENT = "dbt_wg_shadow_test"
SHADOW = f"shadow_run/{DEPLOYMENT}-shadow"
TRIGGER = f"{DEPLOYMENT}-shadow-on-dbt-cloud-run"


def _tenant(enabled: bool) -> TenantSettings:
    base = on_process_pool(load_tenant(), "wg-test-process", deployment_name=DEPLOYMENT)
    return base.model_copy(update={"shadow": base.shadow.model_copy(update={"enabled": enabled})})


def _apply(enabled: bool, **options: Any) -> ApplyDiff:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    tenant = _tenant(enabled)
    plan = build_plan([Job.from_api(item) for item in raw["data"]], tenant)
    return apply_deployment(build_deployment(plan, tenant), create_pool=True, **options)


def _shadow() -> tuple[Any, dict[str, Any]]:
    with connect_prefect() as prefect:
        deployment = prefect.read_deployment(SHADOW)
        related = [] if deployment is None else prefect.read_related_automations(deployment.id)
    return deployment, {a.name: a for a in related}


def test_the_shadow_deployment_exists_only_while_shadowing_is_on(prefect_api: None) -> None:
    off = _apply(False)
    assert off.shadow is None and _shadow()[0] is None  # existing tenants change nothing

    on = _apply(True, dry_run=True)
    assert on.shadow is not None and on.shadow.status == "added" and not on.applied
    assert [(c.slug, c.status, c.active) for c in on.shadow_triggers] == [(TRIGGER, "added", True)]
    assert _apply(True).applied
    deployment, triggers = _shadow()
    assert deployment is not None and deployment.entrypoint == SHADOW_ENTRYPOINT
    assert deployment.work_pool_name == "wg-test-process" and triggers[TRIGGER].enabled
    assert not _apply(True).has_changes  # idempotent

    turned_off = _apply(False)
    assert turned_off.shadow is not None and turned_off.shadow.status == "unchanged"
    assert [(c.slug, c.status, c.fields) for c in turned_off.shadow_triggers] == [(TRIGGER, "changed", ["enabled"])]
    deployment_after, triggers = _shadow()
    assert deployment_after is not None and deployment_after.id == deployment.id and not triggers[TRIGGER].enabled
    assert not _apply(False).has_changes
    assert _apply(True).shadow_triggers[0].fields == ["enabled"] and _shadow()[1][TRIGGER].enabled


def test_prefect_yaml_carries_the_shadow_deployment_and_its_trigger() -> None:
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    for enabled in (False, True):
        tenant = _tenant(enabled)
        spec = build_deployment(build_plan([Job.from_api(item) for item in raw["data"]], tenant), tenant)
        deployments = prefect_yaml_document(spec, "3")["deployments"]
        assert [d["name"] for d in deployments] == [DEPLOYMENT, *([f"{DEPLOYMENT}-shadow"] if enabled else [])]
    main, shadow = deployments
    assert shadow["entrypoint"] == SHADOW_ENTRYPOINT and shadow["schedules"] == []
    assert (shadow["pull"], shadow["work_pool"]) == (main["pull"], main["work_pool"])
    [trigger] = shadow["triggers"]
    assert trigger["expect"] == ["dbt2prefect.dbt_cloud.run.completed"]
    assert trigger["parameters"]["dbt_cloud_run_id"] == "{{ event.payload.run_id }}"


def test_a_completed_run_event_starts_the_shadow_flow_with_that_run(prefect_api: None) -> None:
    _apply(True)
    deployment, _ = _shadow()
    assert deployment is not None
    run = RunCompleted(
        account_id=1,
        job_id=102,
        run_id=987654,
        status="success",
        finished_at="2026-12-03T06:00:00Z",
        environment_id=None,
        source="poll",
    )
    with connect_prefect() as prefect:
        prefect.emit_events([run.event()])
        deadline = time.monotonic() + 60
        runs: list[Any] = []
        while not runs and time.monotonic() < deadline:
            time.sleep(0.5)
            runs = prefect.read_flow_runs(deployment.id, started_only=False)
    assert runs, "the trigger did not start the shadow deployment within a minute"
    [started] = runs
    assert (started.parameters["job_id"], started.parameters["dbt_cloud_run_id"]) == (102, 987654)
    assert started.parameters["status"] == "success" and started.parameters["event"]["source"] == "poll"
