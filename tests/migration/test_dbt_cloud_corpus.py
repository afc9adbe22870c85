"""Export, plan and a job update round trip against the strict sandbox, with a corpus built from the spec's
field lists: nulls, missing keys, unknown fields, an environment that answers 404. Run with the sandbox keeping
and resetting omitted fields (the live behaviour is not documented).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbt2prefect.tenant import load_tenant
from migration.dbt_cloud.client import DbtCloudClient
from migration.export import export_inventory
from migration.switch_context import field_differences
from migration.translate import plan_inventory
from sandbox.dbt_cloud import SEED_JOBS, SandboxDbtCloud

SEED = json.loads(SEED_JOBS.read_text())["data"]
NIGHTLY = SEED[0]
NULLS, MISSING, EXTRA, GONE_ENV = 91, 92, 93, 94
GONE_ENVIRONMENT = 70403103939999


def corpus() -> list[dict[str, Any]]:
    nulls = {
        **NIGHTLY,
        "id": NULLS,
        "name": "Nulls where the API may send them",
        "description": None,
        "compare_changes_flags": None,
        "cost_optimization_features": None,
        "triggers": {"github_webhook": False, "git_provider_webhook": None, "schedule": True, "on_merge": None},
        "settings": {"threads": 4, "target_name": None},
        "generate_docs": None,
        "run_lint": None,
        "generate_sources": True,
        "deactivation_reason": None,
        "job_completion_trigger_condition": None,
    }
    keep = ("id", "account_id", "project_id", "environment_id", "name", "state", "settings", "execution", "triggers",
            "execute_steps", "schedule")  # fmt: skip
    missing = {k: v for k, v in NIGHTLY.items() if k in keep} | {"id": MISSING, "name": "Only some keys"}
    extra = {**NIGHTLY, "id": EXTRA, "name": "Fields from the future", "fusion_readiness": {"ready": True},
             "triggers": {**NIGHTLY["triggers"], "on_pr_label": False}}  # fmt: skip
    gone = {**NIGHTLY, "id": GONE_ENV, "name": "Deleted, environment gone", "state": 2,
            "environment_id": GONE_ENVIRONMENT}  # fmt: skip
    return [*SEED, nulls, missing, extra, gone]


@pytest.fixture(params=["keep", "reset"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxDbtCloud]:
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps({"status": {"code": 200}, "data": corpus(), "extra": {}}))
    with SandboxDbtCloud.start(jobs_file, omitted_fields=request.param) as server:
        del server.app.state.environments[GONE_ENVIRONMENT]  # as for a deleted job's deleted environment
        yield server


def test_export_and_plan_survive_the_corpus(cloud: SandboxDbtCloud) -> None:
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
        inventory = export_inventory(client)
    assert len(inventory.jobs) == len(corpus())
    assert inventory.missing_environments == [GONE_ENVIRONMENT]
    plan = plan_inventory(inventory, load_tenant())
    status = {j.job_id: j.status for j in plan.jobs}
    assert status[GONE_ENV] == "not_migrated"
    assert {status[NULLS], status[MISSING], status[EXTRA]} <= {"scheduled", "blocked"}
    assert {s.job_id for s in plan.schedules} >= {MISSING, EXTRA}


@pytest.mark.parametrize("job_id", [NULLS, MISSING, EXTRA])
def test_pause_and_restore_keep_every_writable_field(cloud: SandboxDbtCloud, job_id: int) -> None:
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token) as client:
        original = client.get_job_dict(job_id)
        paused = client.update_job({**original, "triggers": {**original["triggers"], "schedule": False}})
        assert paused.triggers.schedule is False
        flipped = ["job_type", "triggers"] if "job_type" in original else ["triggers"]
        assert field_differences(client.get_job_dict(job_id), original) == flipped
        client.update_job(original)
        assert field_differences(client.get_job_dict(job_id), original) == []  # job_type included
    if job_id == NULLS:
        assert cloud.app.state.get_job(job_id)["generate_sources"] is True
