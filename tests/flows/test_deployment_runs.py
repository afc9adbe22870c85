"""Deployment runs of `run_dbt_wg/<name>` executed by a real process worker that starts in an empty folder.

Two kinds of deployment, as the toolkit produces them: `apply` with a local folder as code storage (a laptop),
and the emitted prefect.yaml deployed with `prefect deploy`, whose code storage is a git repository (a
`git_clone` of the tenant copy's bare repository over `file://`: the production pull step with a local address).
Both are read back through the API and must equal each other field by field; both must run. A run of the git
kind shares no folder with this process: it imports its clone's code, and its artifacts come back through the
artifact store in object storage (the S3 API on loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from dbt2prefect.artifact_store import ArtifactStore
from dbt2prefect.names import job_tag, schedule_slug
from dbt2prefect.prefect_gateway import connect_prefect
from dbt2prefect.run_job import parse_cache_dir
from dbt2prefect.tenant import REPO_ROOT, TenantSettings
from migration.apply import apply_deployment, deployment_triggers
from migration.deployment import DeploymentSpec, build_deployment
from migration.emit import render_prefect_yaml
from migration.export import load_inventory
from migration.translate import plan_inventory
from sandbox.runs import DeploymentRun, run_deployment_now
from sandbox.stack import on_process_pool
from sandbox.worker import ProcessWorker

SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
HOURLY_FINANCE = 70403103936340
POOL = "wg-test-worker"


def _spec(tenant: TenantSettings, name: str) -> DeploymentSpec:
    inventory = load_inventory(SEED)
    tenant = tenant.model_copy(update={"deployment_name": name})
    return build_deployment(
        plan_inventory(inventory, tenant),
        tenant,
    )


def _prefect_deploy(spec: DeploymentSpec, cwd: Path, folder: Path) -> None:
    """`prefect deploy` of the emitted file (written to `folder`), as a person runs it from the repository's root."""
    from prefect.settings import get_current_settings

    prefect_file = folder / f"{spec.name}.prefect.yaml"
    prefect_file.write_text(render_prefect_yaml(spec, "3.9.1"), encoding="utf-8")
    env = {**os.environ, "PREFECT_API_URL": str(get_current_settings().api.url)}
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _read_back(full_name: str) -> dict[str, Any]:
    """What Prefect stores of a deployment, in the terms of the description (names and ids left out)."""
    with connect_prefect() as prefect:
        found = prefect.read_deployment(full_name)
        assert found is not None
        schedules = prefect.read_schedules(found.id)
        automations = deployment_triggers(prefect, found.id)
    # A trigger names its own deployment (by name in its match, by id in its action): compare the rest.
    triggers = {
        name: json.loads(
            a.model_dump_json(exclude={"id", "created", "updated"})
            .replace(str(found.id), "<deployment id>")
            .replace(f'"{found.name}"', '"<deployment>"')
        )
        for name, a in automations.items()
    }
    for trigger in triggers.values():
        trigger["trigger"].pop("id", None)
    return {
        "triggers": triggers,
        "entrypoint": found.entrypoint,
        "work_pool_name": found.work_pool_name,
        "description": found.description,
        "parameters": found.parameters,
        "parameter_openapi_schema": found.parameter_openapi_schema,
        "enforce_parameter_schema": found.enforce_parameter_schema,
        "pull_steps": found.pull_steps,
        "job_variables": found.job_variables,
        "schedules": sorted(
            (
                s.slug,
                s.active,
                s.parameters,
                s.schedule.model_dump(mode="json"),
            )
            for s in schedules
        ),
    }


@pytest.fixture(scope="module")
def local_tenant(tenant_copy: Any) -> TenantSettings:
    """The tenant copy on the worker's pool, its code in this checkout (a local folder)."""
    return on_process_pool(tenant_copy.settings, POOL, code_storage={"directory": str(REPO_ROOT)})


@pytest.fixture(scope="module")
def git_tenant(tenant_copy: Any) -> TenantSettings:
    """The tenant copy on the worker's pool, cloning the copy's repository (its settings file committed in it)."""
    tenant = on_process_pool(tenant_copy.settings, POOL)
    assert tenant.code_storage is not None and tenant.code_storage.repository == tenant_copy.remote.url
    return tenant


@pytest.fixture(scope="module")
def deployed(
    local_tenant: TenantSettings,
    git_tenant: TenantSettings,
    tenant_copy: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, DeploymentSpec]:
    """Each kind twice: through `apply` and through `prefect deploy` of the emitted file."""
    specs = {
        "local-apply": _spec(local_tenant, "dbt_wg_local_apply"),
        "local-yaml": _spec(local_tenant, "dbt_wg_local_yaml"),
        "git-apply": _spec(git_tenant, "dbt_wg_git_apply"),
        "git-yaml": _spec(git_tenant, "dbt_wg_git_yaml"),
    }
    apply_deployment(specs["local-apply"], create_pool=True)
    apply_deployment(specs["git-apply"], create_pool=True)
    files = tmp_path_factory.mktemp("prefect-yaml")
    _prefect_deploy(specs["local-yaml"], REPO_ROOT, files)
    # As a person runs it from their checkout of the repository the workers clone.
    _prefect_deploy(specs["git-yaml"], tenant_copy.remote.checkout, files)
    return specs


@pytest.mark.parametrize("kind", ["local", "git"])
def test_apply_and_prefect_deploy_store_the_same_deployment(deployed: dict[str, DeploymentSpec], kind: str) -> None:
    applied = _read_back(deployed[f"{kind}-apply"].full_name)
    from_yaml = _read_back(deployed[f"{kind}-yaml"].full_name)
    assert applied == from_yaml
    assert applied["pull_steps"] == deployed[f"{kind}-apply"].pull_steps
    assert len(applied["schedules"]) == len(deployed[f"{kind}-apply"].schedules)
    assert not any(active for _, active, _, _ in applied["schedules"])
    # The seed's chained job is a trigger of both, created off (its job is not cut over).
    assert sorted(applied["triggers"]) == [t.name for t in deployed[f"{kind}-apply"].triggers] != []
    assert not any(t["enabled"] for t in applied["triggers"].values())


def _run(spec: DeploymentSpec, parameters: dict[str, Any]) -> DeploymentRun:
    return run_deployment_now(spec.full_name, parameters, timeout=600)


def test_a_worker_in_an_empty_folder_clones_the_code_and_runs_the_schedule_parameters(
    deployed: dict[str, DeploymentSpec], process_worker: ProcessWorker, tenant_copy: Any
) -> None:
    # The apply kind with a local folder completes in tests/sandbox/test_demo.py (and fails below, as it should).
    spec = deployed["git-yaml"]
    parameters = spec.schedule(schedule_slug(HOURLY_FINANCE)).parameters
    run = _run(spec, parameters)
    assert run.completed, f"{run.state}: {run.message}\n{process_worker.log_tail(40)}"
    assert run.parameters == parameters and run.deployment_id
    assert tenant_copy.store.startswith("s3://")  # read back through object storage, not a folder both sides see
    store = ArtifactStore(tenant_copy.store)
    # Artifacts go where the tenant settings say (the test deploys under other names than the tenant's).
    key = store.find_run(spec.tenant, tenant_copy.settings.deployment_name, run.flow_run_id)
    assert key is not None and key.target == parameters["target"]
    assert store.has(key, "manifest.json") and store.has(key, "run_results.json")
    record = store.read_json(key, "run.json")
    assert record["parameters"]["selector"] == "hourly_finance"
    # The run imported the code of its own clone of the repository, not this checkout's, nor the copy's.
    code_root = Path(record["code_root"])
    assert code_root.is_relative_to(process_worker.folder), (code_root, process_worker.folder)
    assert not code_root.is_relative_to(REPO_ROOT) and not code_root.is_relative_to(tenant_copy.root)
    # The run says which dbt Cloud job it replaces: its tag (on its events too), its name, the store's job pointer.
    assert job_tag(HOURLY_FINANCE) in run.tags
    assert run.name.startswith(f"job-{HOURLY_FINANCE} Hourly finance refresh (")
    assert store.job_run(spec.tenant, tenant_copy.settings.deployment_name, key.target, HOURLY_FINANCE) == key
    # dbt ran in the worker's own copy of the project, which stays where it is so that the next run of the project
    # parses partially: every saved parse in the worker's runs folder belongs to such a copy, none to a clone.
    runs = process_worker.folder / "runs"
    copies = {parse_cache_dir(p, "t").name[:-2] for p in runs.glob("projects/*/slot-*/project")}
    saved = {cache.name.split("-", 1)[0] for cache in (runs / "parse-cache").iterdir()}
    assert copies and saved and saved <= copies, (saved, copies)


def test_a_failing_node_fails_the_run_and_names_the_node(
    deployed: dict[str, DeploymentSpec], process_worker: ProcessWorker
) -> None:
    parameters = {
        "command": "run",
        "select": "stg_crm__distributors",
        "target": "dev",
        "vars": '{"raw_database": "no_such_catalog"}',
        "node_task_runs": "states",
    }
    run = _run(deployed["local-apply"], parameters)
    assert run.state == "Failed", f"{run.state}: {run.message}"
    assert "stg_crm__distributors" in run.message
    # The worker's flow-run process recorded the node's task run from dbt's events, in this flow run.
    with connect_prefect() as prefect:
        deadline = time.monotonic() + 30  # the server records task runs from their events, asynchronously
        while not (task_runs := prefect.read_task_runs(UUID(run.flow_run_id))) and time.monotonic() < deadline:
            time.sleep(0.3)
    assert [(t.name, t.state_name) for t in task_runs] == [("model stg_crm__distributors", "Failed")]
    assert str(task_runs[0].state.message).startswith(  # type: ignore[union-attr]
        "model.dbt_williamgrant.stg_crm__distributors error:"
    )


def test_a_bad_parameter_fails_the_run_and_names_the_parameter(
    deployed: dict[str, DeploymentSpec], process_worker: ProcessWorker
) -> None:
    run = _run(deployed["local-apply"], {"command": "build", "target": "dev", "vars": "[1, 2]"})
    assert run.state == "Failed", f"{run.state}: {run.message}"
    assert "vars" in run.message
