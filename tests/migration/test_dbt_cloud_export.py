"""Export of a dbt Cloud account to an inventory file, and reading inventories back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.settings import RetryPolicy
from migration.errors import InventoryError
from migration.export import Inventory, export_inventory, load_inventory, write_inventory
from sandbox.dbt_cloud import SEED_JOBS, SandboxDbtCloud

NIGHTLY = 70403103936332
HOURLY = 70403103936340
FAST_RETRY = RetryPolicy(max_attempts=10, backoff_base=0.01, backoff_max=0.05, deadline=20.0)


def _comparable(inventory: Inventory) -> dict[str, Any]:
    return inventory.model_dump(mode="json", exclude={"exported_at"})


def test_export_writes_jobs_environments_and_latest_runs(
    cloud: SandboxDbtCloud, client: DbtCloudClient, tmp_path: Path
) -> None:
    ok = cloud.app.state.add_run_record(NIGHTLY, 10)["id"]
    cloud.app.state.add_run_record(NIGHTLY, 20)
    inventory = export_inventory(client, max_workers=4)
    assert len(inventory.jobs) == 9 and sum(j.job.is_deleted for j in inventory.jobs) == 1
    assert inventory.latest_successful_runs()[NIGHTLY] == ok
    assert sorted(e["name"] for e in inventory.environments) == ["CI", "Production"]
    assert {n.id for n in inventory.notification_models()} == {n["id"] for n in cloud.app.state.notifications}
    assert inventory.host == cloud.url and inventory.account_id == cloud.account_id
    nightly = next(j for j in inventory.jobs if j.raw["id"] == NIGHTLY)
    assert nightly.raw == cloud.app.state.get_job(NIGHTLY)  # the raw API dict, untouched
    variables = inventory.environment_variable_models()
    assert variables is not None and set(variables.projects) == {nightly.raw["project_id"]}
    assert set(variables.jobs) == {j.raw["id"] for j in inventory.jobs if not j.job.is_deleted}
    assert variables.jobs[HOURLY].variables["DBT_WG_REGION"]["job"].value == "uk"
    path = write_inventory(inventory, tmp_path / "out" / "inventory.json")
    assert load_inventory(path) == inventory
    assert cloud.token not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["inventory.json"]  # no temp file left behind


def test_export_under_20_percent_faults_matches_a_clean_export(cloud: SandboxDbtCloud) -> None:
    state = cloud.app.state
    for job_id in state.add_generated_jobs(140)[::3]:
        state.add_run_record(job_id, 10)
    with DbtCloudClient(cloud.url, cloud.account_id, cloud.token, retry=FAST_RETRY) as api:
        clean = export_inventory(api, max_workers=6)
        cloud.set_faults(rate_429=0.08, rate_5xx=0.07, rate_drop=0.05, retry_after=0, seed=2024)
        faulty = export_inventory(api, max_workers=6)
    assert _comparable(faulty) == _comparable(clean)
    assert len(clean.jobs) == 149 and sum(r is not None for r in clean.latest_successful_runs().values()) == 47
    injected = cloud.app.faults.counts
    assert injected["429"] > 0 and injected["drop"] > 0 and injected["500"] + injected["502"] + injected["503"] > 0


def test_load_inventory_accepts_a_saved_jobs_list_response() -> None:
    inventory = load_inventory(SEED_JOBS)
    assert inventory.source == "jobs_list_file"
    assert inventory.account_id == 70403103922125 and inventory.project_id == 70403103926818
    assert len(inventory.job_models()) == 9
    assert all(j.latest_successful_run_id is None for j in inventory.jobs)


def test_an_inventory_written_before_environment_variables_were_exported_loads(tmp_path: Path) -> None:
    doc = Inventory(account_id=1, jobs=[]).model_dump(mode="json", exclude={"environment_variables"})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc))
    assert "environment_variables" not in path.read_text()
    assert load_inventory(path).environment_variable_models() is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not readable JSON"),
        ('{"jobs": []}', "is neither a dbt2prefect inventory"),
        ('{"status": {"code": 200}, "data": []}', "the jobs list is empty"),
        ('{"status": {"code": 200}, "data": [{"id": 1, "account_id": 2}]}', "job #0 (id 1)"),
    ],
)
def test_bad_inventory_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "jobs.json"
    path.write_text(content)
    with pytest.raises(InventoryError, match=r"jobs\.json") as info:
        load_inventory(path)
    assert message in str(info.value) and info.value.exit_code == 2


def test_missing_inventory_says_run_export(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="run `dbt2prefect export` first"):
        load_inventory(tmp_path / "nope.json")


def test_cli_export_writes_file_and_json(
    cloud: SandboxDbtCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", cloud.token)
    out = tmp_path / "inventory.json"
    args = ["export", "--host", cloud.url, "--account-id", str(cloud.account_id), "--output", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Exported 9 job(s) (1 deleted), 2 environment(s)" in result.output
    assert load_inventory(out).account_id == cloud.account_id
    result = CliRunner().invoke(app, [*args, "--json", "--active-only"])
    assert result.exit_code == 0
    assert len(json.loads(result.output)["jobs"]) == 8
    assert cloud.token not in result.output and cloud.token not in out.read_text()


def test_cli_export_with_a_wrong_token_exits_2_without_traceback(
    cloud: SandboxDbtCloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WG_TOKEN", "dbtc_wrong-token-value")
    args = ["export", "--host", cloud.url, "--account-id", str(cloud.account_id), "--token-env", "WG_TOKEN"]
    result = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "x.json")])
    assert result.exit_code == 2
    assert "token or host wrong" in result.output and "WG_TOKEN" in result.output
    assert "Traceback" not in result.output and "dbtc_wrong-token-value" not in result.output
    assert not (tmp_path / "x.json").exists()
