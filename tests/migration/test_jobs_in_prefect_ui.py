"""A dbt Cloud user finds each job by its name in the Prefect UI: on the deployment page and on its upcoming runs.

The UI's pages read the Prefect API: the deployment page its description and schedules (`GET /deployments/{id}`),
the Upcoming tab the deployment's scheduled flow runs (`POST /flow_runs/filter`), each shown with its Created By,
the slug of the schedule that made it. This test reads the same answers after `apply` on the session's Prefect
server, with the runs scheduled as the server's scheduler service makes them (`POST /deployments/{id}/schedule`).
The deployment is on a work pool no worker serves, so none of its runs starts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.events_budget import prefect_http
from dbt2prefect.escaping import markdown_cell
from dbt2prefect.names import schedule_slug
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.tenant import load_tenant
from migration.apply import apply_deployment
from migration.dbt_cloud.models import Job
from migration.deployment import build_deployment
from migration.plan import MigrationPlan
from migration.translate import build_plan
from sandbox.stack import on_process_pool

pytestmark = pytest.mark.e2e  # the session's Prefect server

FIXTURES = Path(__file__).parent / "fixtures"
DEPLOYMENT = "dbt_wg_ui_test"


@pytest.fixture(scope="module")
def scheduled(prefect_api: None) -> Iterator[tuple[MigrationPlan, dict[str, Any]]]:
    tenant = on_process_pool(load_tenant(), "wg-test-no-worker", deployment_name=DEPLOYMENT)
    raw = json.loads((FIXTURES / "jobs_edge_cases.json").read_text())
    plan = build_plan([Job.from_api(item) for item in raw["data"]], tenant)
    assert apply_deployment(build_deployment(plan, tenant), create_pool=True).applied
    with connect_prefect() as prefect:
        api_url = prefect.api_url
        deployment = prefect.read_deployment(f"run_dbt_wg/{DEPLOYMENT}")
        assert deployment is not None
        for schedule in prefect.read_schedules(deployment.id):  # as cutover --all switches them on
            prefect.update_schedule(deployment.id, schedule.id, parameters=schedule.parameters, active=True)
    with prefect_http(api_url) as api:
        api.post(f"/deployments/{deployment.id}/schedule", json={"max_runs": 50}).raise_for_status()
        page = api.get(f"/deployments/{deployment.id}").json()
        upcoming = api.post(
            "/flow_runs/filter",
            json={
                "flow_runs": {
                    "deployment_id": {"any_": [str(deployment.id)]},
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                },
                "sort": "EXPECTED_START_TIME_ASC",
                "limit": 200,
            },
        ).json()
    try:
        yield plan, {"page": page, "upcoming": upcoming}
    finally:
        with prefect_http(api_url) as api:
            api.delete(f"/deployments/{deployment.id}").raise_for_status()  # and its scheduled runs


def _jobs(plan: MigrationPlan) -> dict[int, str]:
    return {s.job_id: s.job_name for s in plan.schedules}


def test_the_deployment_page_names_every_job_in_its_description_and_schedules(
    scheduled: tuple[MigrationPlan, dict[str, Any]],
) -> None:
    plan, read = scheduled
    page = read["page"]
    slugs = {schedule["slug"] for schedule in page["schedules"]}
    for job_id, name in _jobs(plan).items():
        assert schedule_slug(job_id, name) in slugs, (job_id, name)
    rows = [line for line in page["description"].splitlines() if line.startswith("| ")]
    for job_id, name in [*_jobs(plan).items(), *((t.job_id, t.job_name) for t in plan.triggers)]:
        # each scheduled or chained job is a row of the description's table: its id, then its name
        assert any(row.startswith(f"| {job_id} | {markdown_cell(name)} |") for row in rows), (job_id, name)


def test_every_scheduled_job_has_an_upcoming_run_created_by_its_named_schedule(
    scheduled: tuple[MigrationPlan, dict[str, Any]],
) -> None:
    plan, read = scheduled
    shown = {run["created_by"]["display_value"] for run in read["upcoming"] if run["created_by"]}
    assert all(run["created_by"]["type"] == "SCHEDULE" for run in read["upcoming"])
    for job_id, name in _jobs(plan).items():
        slug = schedule_slug(job_id, name)
        assert slug in shown, f"no upcoming run of job {job_id} ({name}) shows {slug}"
        assert slug != f"job-{job_id}", f"job {job_id}'s name {name!r} left no word in its schedule's slug"
