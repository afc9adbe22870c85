"""`dbt2prefect plan` and `apply` through the CLI: tables, JSON, exit codes, acknowledgements."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.names import schedule_job_id, schedule_slug
from dbt2prefect.tenant import REPO_ROOT
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.stack import derive_tenant_file, sandbox_deployment_settings

FIXTURE = Path(__file__).parent / "fixtures" / "jobs_edge_cases.json"
runner = CliRunner()


def _tenant_file(tmp_path: Path, extra: str) -> Path:
    text = (REPO_ROOT / "tenants" / "dbt_williamgrant.toml").read_text()
    text = text.replace(
        'project_dir = "dbt_williamgrant"', f'project_dir = "{REPO_ROOT / "tenants" / "dbt_williamgrant"}"'
    )
    text = text.replace('local_profiles_dir = "dbt_williamgrant/profiles"', "")
    text = text.replace("acknowledged_findings = []", extra)
    path = tmp_path / "tenant.toml"
    path.write_text(text)
    return path


def test_plan_json_lists_blockers_and_exits_1() -> None:
    result = runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert "steps_empty:106" in data["blocking"]
    assert {schedule_job_id(s["slug"]) for s in data["schedules"]} >= {101, 102}
    assert all(s["slug"] == schedule_slug(s["job_id"], s["job_name"]) for s in data["schedules"])


def test_plan_table_shows_schedules_in_words_and_findings() -> None:
    result = runner.invoke(app, ["plan", "--from-file", str(FIXTURE)], env={"COLUMNS": "250"})
    assert "every day at 06:00, 18:00 UTC" in result.stdout
    assert "steps_empty" in result.stdout and "blocker" in result.stdout and "job_chaining" in result.stdout


@pytest.mark.parametrize("inventory", [FIXTURE, REPO_ROOT / "sandbox/dbt_cloud/seed_jobs.json"])
def test_plan_is_readable_at_80_columns_one_block_per_job(inventory: Path) -> None:
    result = runner.invoke(app, ["plan", "--from-file", str(inventory)], env={"COLUMNS": "80"})
    wide = runner.invoke(app, ["plan", "--from-file", str(inventory)], env={"COLUMNS": "1000"})
    data = json.loads(runner.invoke(app, ["plan", "--from-file", str(inventory), "--json"]).stdout)
    lines = (result.stdout + result.stderr).splitlines()
    assert max(len(line) for line in lines) <= 80, result.output
    headers = [line for line in result.stdout.splitlines() if line.startswith("job ")]
    assert [int(line.split()[1]) for line in headers] == [job["job_id"] for job in data["jobs"]], "ids unbroken"
    # Every id or other long number shown at 80 columns is whole: it is shown the same way on a wide terminal.
    whole = set(re.findall(r"\d{5,}", wide.stdout + wide.stderr))
    assert set(re.findall(r"\d{5,}", result.stdout + result.stderr)) <= whole


def test_acknowledged_blockers_let_plan_pass(tmp_path: Path) -> None:
    blocking = json.loads(runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json"]).stdout)["blocking"]
    tenant = _tenant_file(tmp_path, f"acknowledged_findings = {json.dumps(blocking)}")
    result = runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json", "--tenant-file", str(tenant)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["blocking"] == []


def test_bad_inventory_is_exit_2() -> None:
    result = runner.invoke(app, ["plan", "--from-file", str(REPO_ROOT / "pyproject.toml")])
    assert result.exit_code == 2 and "not readable JSON" in result.output


@pytest.mark.usefixtures("prefect_api")
def test_apply_twice_says_nothing_to_change(tmp_path: Path) -> None:
    blocking = json.loads(runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json"]).stdout)["blocking"]
    overrides = {"acknowledged_findings": blocking, "deployment_name": "dbt_wg_cli_test"}
    overrides |= sandbox_deployment_settings("wg-test-process")
    tenant = derive_tenant_file(tmp_path / "tenant.toml", overrides=overrides)
    args = ["apply", "--from-file", str(FIXTURE), "--tenant-file", str(tenant), "--create-pool"]
    dry = runner.invoke(app, [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    shown = json.loads(dry.stdout)
    assert shown["deployment"]["status"] == "added" and not shown["applied"]
    assert shown["server_state"]["deployment"]  # what the diff was read from
    first = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "inactive until cutover" in first.stdout
    second = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert second.exit_code == 0 and "Nothing to change." in second.stdout


def test_live_plan_reads_the_sandbox_dbt_cloud_api(tmp_path: Path, cloud: SandboxDbtCloud) -> None:
    tenant = _tenant_file(tmp_path, "acknowledged_findings = []")
    text = tenant.read_text().replace('host = "https://emea.dbt.com"', f'host = "{cloud.url}"')
    text = text.replace("account_id = 70403103922125", f"account_id = {cloud.account_id}")
    tenant.write_text(text.replace('token_env = "DBT_CLOUD_API_TOKEN"', 'token_env = "WG_TEST_DBT_CLOUD_TOKEN"'))
    result = runner.invoke(
        app, ["plan", "--json", "--tenant-file", str(tenant)], env={"WG_TEST_DBT_CLOUD_TOKEN": cloud.token}
    )
    data = json.loads(result.stdout)
    from_file = json.loads(
        runner.invoke(
            app, ["plan", "--json", "--from-file", str(REPO_ROOT / "sandbox/dbt_cloud/seed_jobs.json")]
        ).stdout
    )
    assert [s["slug"] for s in data["schedules"]] == [s["slug"] for s in from_file["schedules"]]
    assert len(data["jobs"]) == 9
    assert cloud.token not in result.output


def test_plan_as_csv_and_markdown_has_one_row_per_job() -> None:
    import csv
    import io

    jobs = json.loads(runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json"]).stdout)["jobs"]
    as_csv = runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--format", "csv"])
    assert as_csv.exit_code == 1, "blockers still exit 1"
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [int(row["job_id"]) for row in rows] == [job["job_id"] for job in jobs]
    assert any("blocker:steps_empty" in row["findings"] for row in rows)
    assert any("info:job_chaining" in row["findings"] for row in rows)
    markdown = runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--format", "markdown"]).stdout.splitlines()
    assert markdown[0].startswith("| job_id | job_name |") and len(markdown) == 2 + len(jobs)


def test_plan_json_and_another_format_is_bad_input() -> None:
    result = runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json", "--format", "csv"])
    assert result.exit_code == 2 and "--format csv" in result.output


@pytest.mark.usefixtures("prefect_api")
def test_apply_refuses_when_the_server_changes_after_the_diff_was_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli.plan_cmd
    from dbt2prefect.prefect_gateway import connect_prefect

    blocking = json.loads(runner.invoke(app, ["plan", "--from-file", str(FIXTURE), "--json"]).stdout)["blocking"]
    overrides = {"acknowledged_findings": blocking, "deployment_name": "dbt_wg_cli_shown"}
    overrides |= sandbox_deployment_settings("wg-test-process")
    tenant = derive_tenant_file(tmp_path / "tenant.toml", overrides=overrides)
    args = ["apply", "--from-file", str(FIXTURE), "--tenant-file", str(tenant), "--create-pool"]
    assert runner.invoke(app, args).exit_code == 0
    with connect_prefect() as prefect:
        deployment = prefect.read_deployment("run_dbt_wg/dbt_wg_cli_shown")
        assert deployment is not None
        (job_101,) = [s for s in prefect.read_schedules(deployment.id) if schedule_job_id(s.slug) == 101]
        prefect.delete_schedule(deployment.id, job_101.id)  # so that apply has something to show

    render = cli.plan_cmd._render_diff

    def render_then_change_by_hand(diff: Any) -> None:
        render(diff)
        with connect_prefect() as prefect:
            prefect.update_deployment(deployment.id, {"description": "changed by hand"})

    monkeypatch.setattr(cli.plan_cmd, "_render_diff", render_then_change_by_hand)
    refused = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert refused.exit_code == 2, refused.output
    assert "changed since the diff was shown: deployment (changed)" in refused.stderr
    assert "Traceback" not in refused.output
    with connect_prefect() as prefect:
        after = prefect.read_deployment("run_dbt_wg/dbt_wg_cli_shown")
        assert after is not None and after.description == "changed by hand"
        assert 101 not in {schedule_job_id(s.slug) for s in prefect.read_schedules(deployment.id)}, "nothing written"
    monkeypatch.undo()
    shown_again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert shown_again.exit_code == 0 and "Applied" in shown_again.stdout
