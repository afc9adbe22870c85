"""A second tenant of another shape goes the whole path with no change to the toolkit: settings and data only.

`tests/tenants/shop/` is a small dbt project unlike the first tenant: its raw data are seeds in a schema called
`raw`, it has unit tests, a semantic model, a metric, a saved query, an exposure and a group, a `local:` package
outside its folder, profile `default`, no selectors.yml, and a model that depends on the target. Its settings
(`shop.toml`) name its jobs file and nothing else the sandbox needs.

The path: the sandbox serves the tenant's jobs → a baseline dbt Cloud run → export over HTTP → plan → apply →
a deployment run picked up by the session's real worker → parity PASS; then a changed model → another
deployment run → parity FAIL naming it. One module, one test, so the expensive runs happen once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dbt2prefect.tenant import load_tenant
from parity.artifacts import load_manifest, load_run_results
from parity.model import Verdict
from sandbox.demo import (
    StepFailed,
    apply_plan,
    export_account,
    plan_jobs,
    run_baselines,
    run_candidates,
    run_parity,
)
from sandbox.stack import ensure_raw_data, prepare_workdir, register_profile_blocks, start_dbt_cloud, write_tenant_file
from sandbox.worker import ProcessWorker
from tests.flows.conftest import WORKER_POOL

TENANTS = Path(__file__).resolve().parents[1] / "tenants"
DAILY_BUILD = 5001


def _team_folder(root: Path) -> Path:
    """The team's checkout: project, local package, settings, jobs and parity settings (a copy we may edit)."""
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", "package-lock.yml")
    for name in ("shop", "shop_utils"):
        shutil.copytree(TENANTS / name, root / name, ignore=ignore)
    for name in ("shop.toml", "shop.jobs.json", "shop.parity.toml"):
        shutil.copy(TENANTS / name, root / name)
    return root / "shop.toml"


def _dbt_found_counts(logs: str) -> str:
    """The `Found ...` line dbt logs at the start of a command (what dbt Cloud shows as the run's resources)."""
    match = re.search(r"Found (.+)$", logs, re.MULTILINE)
    assert match is not None, logs[-2000:]
    return match.group(1)


def test_a_second_tenant_goes_from_dbt_cloud_to_prefect_with_parity(
    process_worker: ProcessWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.compilation import pluralize
    from dbt.node_types import NodeType

    team = tmp_path / "team"
    source = load_tenant(_team_folder(team))
    paths = prepare_workdir(tmp_path / "stack", fresh=True)
    assert ensure_raw_data(paths, source) is False  # its seeds are its raw data: nothing to load or attach
    with start_dbt_cloud(paths, source) as cloud:
        assert sorted(cloud.app.state.jobs) == [5001, 5002]  # the tenant's jobs, not the bundled seed account
        tenant = load_tenant(write_tenant_file(paths, cloud, source=source.settings_file, pool=WORKER_POOL))
        monkeypatch.setenv(tenant.dbt_cloud.token_env, cloud.token)
        monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(tenant.settings_file))
        register_profile_blocks(tenant, paths.warehouse)

        # dbt Cloud: profile `default` from dbt_project.yml, deps in the run's copy, seeds into schema `raw`.
        _, (baseline,) = run_baselines(cloud, [DAILY_BUILD])
        run = cloud.app.state.get_run(baseline.run_id, include_steps=True)
        build = next(step for step in run["run_steps"] if step["name"] == "Invoke dbt with `dbt build`")
        assert "Installed from <local @ " in next(s for s in run["run_steps"] if "deps" in s["name"])["logs"]
        assert not (team / "shop" / "dbt_packages").exists() and not (team / "shop" / "package-lock.yml").exists()
        step_dir = cloud.app.state.artifact_dirs[baseline.run_id][build["index"]]
        manifest = load_manifest(step_dir / "manifest.json")
        baseline_results = load_run_results(step_dir / "run_results.json")
        assert "unit_test.shop.customer_orders.completed_amount_ignores_returns" in baseline_results.by_id()
        found = _dbt_found_counts(build["logs"])
        counts = manifest.counts()
        assert {"unit_test", "semantic_model", "metric", "saved_query", "exposure", "group"} <= set(counts)
        for resource_type, count in counts.items():
            assert pluralize(count, NodeType(resource_type)).replace("_", " ") in found, (resource_type, found)

        _, inventory = export_account(paths, tenant)
        _, plan = plan_jobs(inventory, tenant)
        assert sorted(s.job_id for s in plan.schedules) == [5001, 5002]
        _, (_, spec) = apply_plan(plan, tenant)
        assert spec.work_pool == WORKER_POOL

        _, candidates = run_candidates(tenant, spec, [DAILY_BUILD])
        summary, outcome = run_parity(tenant, paths.reports, candidates)
        (job,) = outcome.report.jobs
        assert outcome.report.verdict is Verdict.PASS, summary
        assert {row.resource_type: (row.baseline, row.candidate) for row in job.node_counts} == {
            resource_type: (count, count) for resource_type, count in counts.items()
        }
        compared = {row.unique_id for row in job.value_checks}
        assert {"model.shop.customer_orders", "seed.shop.raw_orders"} <= compared
        # Every node dbt Cloud executed, the unit test among them, ran on the Prefect side with the same status.
        assert not job.node_sets and not job.statuses and job.statuses_matched == job.nodes_matched
        assert job.nodes_matched == len(baseline_results.results)

        # A changed model in the team's project: the next deployment run builds it, and parity names it.
        model = team / "shop" / "models" / "staging" / "stg_customers.sql"
        model.write_text(model.read_text().replace("country", "lower(country) as country", 1))
        _, changed = run_candidates(tenant, spec, [DAILY_BUILD])
        with pytest.raises(StepFailed) as failed:
            run_parity(tenant, paths.reports / "changed", changed)
    report = failed.value.value.report
    assert report.verdict is Verdict.FAIL
    differing = {row.unique_id: row for row in report.jobs[0].value_checks if row.status == "different"}
    assert {"model.shop.stg_customers", "model.shop.customer_orders"} <= set(differing), report.jobs[0].findings
    # values_differ names the changed column.
    assert differing["model.shop.stg_customers"].differing_columns == ["country"]
    assert any(
        f.reason == "values_differ" and f.subject == "model.shop.stg_customers" and "in country" in f.message
        for f in report.jobs[0].findings
    ), report.jobs[0].findings
