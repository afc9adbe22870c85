"""prefect.yaml rendering, read back with Prefect's own prefect.yaml schedule parser, and the drift check."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.workspace import Workspace
from dbt2prefect.tenant import REPO_ROOT, load_tenant, settings_path
from migration.deployment import DeploymentError, DeploymentSpec, build_deployment, pinned_versions
from migration.emit import REGENERATE, quickstart_command, render_prefect_yaml
from migration.export import load_inventory
from migration.plan import MigrationPlan
from migration.translate import build_plan

SEED = REPO_ROOT / "sandbox" / "dbt_cloud" / "seed_jobs.json"
COMMITTED = REPO_ROOT / "tenants" / "dbt_williamgrant.prefect.yaml"
EDGE_CASES = Path(__file__).parent / "fixtures" / "jobs_edge_cases.json"


def _versions() -> dict[str, str]:
    return pinned_versions((REPO_ROOT / "constraints.txt").read_text())


def _plan(path: Path) -> MigrationPlan:
    inventory = load_inventory(path)
    return build_plan(inventory.job_models(), load_tenant(), inventory.environment_models())


def _spec(path: Path, active: dict[int, bool] | None = None) -> DeploymentSpec:
    return build_deployment(_plan(path), load_tenant(), versions=_versions(), active=active)


def _render(spec: DeploymentSpec, source: str = REGENERATE) -> str:
    return render_prefect_yaml(spec, _versions()["prefect"], source=source, example=True)


def test_committed_prefect_yaml_matches_the_seed_jobs() -> None:
    expected = _render(Workspace(load_tenant()).deployment(_plan(SEED)))
    assert COMMITTED.read_text() == expected, f"{COMMITTED} is out of date; regenerate with `.venv/bin/{REGENERATE}`"


def test_production_code_storage_clones_the_repository_and_pins_the_runtime() -> None:
    (deployment,) = yaml.safe_load(_render(_spec(SEED)))["deployments"]
    assert deployment["pull"] == [
        {
            "prefect.deployments.steps.git_clone": {
                "id": "clone",
                "repository": load_tenant().code_storage.repository,  # type: ignore[union-attr]
                "branch": "main",
            }
        }
    ]
    variables = deployment["work_pool"]["job_variables"]
    assert variables["env"] == {"DBT2PREFECT_TENANT_FILE": "tenants/dbt_williamgrant.toml"}
    assert variables["image"] == "prefecthq/prefect-client:3.9.1-python3.12", (
        "the exact Prefect version, not 3-python3.12"
    )
    assert "prefect==3.9.1" in variables["pip_packages"] and "dbt-core==1.11.16" in variables["pip_packages"]


def test_private_repository_credentials_are_a_block_reference() -> None:
    tenant = load_tenant()
    storage = tenant.code_storage.model_copy(update={"credentials_block": "github-credentials/wg-repo"})  # type: ignore[union-attr]
    spec = build_deployment(_plan(SEED), tenant.model_copy(update={"code_storage": storage}), versions=_versions())
    clone = spec.pull_steps[0]["prefect.deployments.steps.git_clone"]
    assert clone["credentials"] == "{{ prefect.blocks.github-credentials.wg-repo }}"


def test_requirements_runtime_installs_after_the_clone() -> None:
    tenant = load_tenant()
    runtime = tenant.runtime.model_copy(update={"dependencies": "requirements", "requirements_file": "req.txt"})
    spec = build_deployment(_plan(SEED), tenant.model_copy(update={"runtime": runtime}), versions=_versions())
    assert spec.pull_steps[1] == {
        "prefect.deployments.steps.pip_install_requirements": {
            "directory": "{{ clone.directory }}",
            "requirements_file": "req.txt",
            "stream_output": False,
        }
    }
    assert "pip_packages" not in spec.job_variables


def test_a_tenant_without_code_storage_is_told_what_to_set() -> None:
    tenant = load_tenant().model_copy(update={"code_storage": None})
    with pytest.raises(DeploymentError, match=r"\[tenant.code_storage\].*repository.*directory"):
        build_deployment(_plan(SEED), tenant, versions=_versions())


def test_prefect_reads_back_the_planned_schedules() -> None:
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule

    plan = _plan(EDGE_CASES)
    document = yaml.safe_load(_render(_spec(EDGE_CASES)))
    (deployment,) = document["deployments"]
    assert deployment["entrypoint"] == "flows/dbt_wg_flow.py:run_dbt_wg"
    read_back = {entry["slug"]: _schedule_config_to_deployment_schedule(entry) for entry in deployment["schedules"]}
    assert list(read_back) == [s.slug for s in plan.schedules]
    for planned in plan.schedules:
        got = read_back[planned.slug]
        assert got["active"] is False
        assert got["parameters"] == planned.parameters
        assert got["schedule"].timezone == "UTC"
        if planned.rrule is not None:
            assert got["schedule"].rrule == planned.rrule
        else:
            assert (got["schedule"].cron, got["schedule"].day_or) == (planned.cron, planned.day_or)


def test_active_flags_are_written_per_job() -> None:
    plan = _plan(EDGE_CASES)
    first = plan.schedules[0]
    document = yaml.safe_load(_render(_spec(EDGE_CASES, active={first.job_id: True})))
    flags = {s["slug"]: s["active"] for s in document["deployments"][0]["schedules"]}
    assert flags == {s.slug: s.slug == first.slug for s in plan.schedules}


def test_output_is_deterministic() -> None:
    assert _render(_spec(SEED)) == _render(_spec(SEED))


def test_packages_are_pinned_from_constraints() -> None:
    versions = _versions()
    assert versions["prefect"] == "3.9.1" and versions["prefect-dbt"] == "0.7.25"
    with pytest.raises(DeploymentError, match="dbt-core"):
        pinned_versions("prefect==3.9.1\n")


def test_quickstart_line_pins_everything_and_has_no_schedule() -> None:
    tenant = load_tenant()
    storage = tenant.code_storage.model_copy(update={"repository": "https://github.com/wg/dbt-wg.git"})  # type: ignore[union-attr]
    spec = build_deployment(_plan(SEED), tenant.model_copy(update={"code_storage": storage}), versions=_versions())
    line = quickstart_command(spec, _versions(), python="3.12")
    assert line is not None
    assert line.startswith("uvx prefect-cloud deploy flows/dbt_wg_flow.py:run_dbt_wg --from wg/dbt-wg ")
    assert "--with prefect==3.9.1" in line and "--with prefect-dbt==0.7.25" in line and "--with-python 3.12" in line
    assert "--env DBT2PREFECT_TENANT_FILE=tenants/dbt_williamgrant.toml" in line
    assert "schedule" not in line


def test_emit_with_an_unacknowledged_blocker_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    out = tmp_path / "prefect.yaml"
    edge_cases = Path(__file__).parent / "fixtures" / "jobs_edge_cases.json"
    args = ["emit", "--from-file", str(edge_cases), "--tenant-file", str(settings_path()), "--output", str(out)]
    args.append("--example")
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1, refused.output
    assert "steps_empty:106" in refused.stderr and "--allow-blockers" in refused.stderr
    assert list(tmp_path.iterdir()) == []

    allowed = CliRunner().invoke(app, [*args, "--allow-blockers"])
    assert allowed.exit_code == 0, allowed.output
    assert "steps_empty:106" in allowed.stderr, "the blockers are still listed"
    # The header names the inventory it was emitted from, not the sandbox's.
    source = "dbt2prefect emit --from-file tests/migration/fixtures/jobs_edge_cases.json --allow-blockers --example"
    assert out.read_text() == _render(Workspace(load_tenant()).deployment(_plan(edge_cases)), source)


def _cloned_tenant(checkout: Path, repository: str, **overrides: object) -> Path:
    """The shipped tenant's settings with `repository` as code storage, in a checkout of that repository."""
    from sandbox.stack import derive_tenant_file

    (checkout / ".git").mkdir(parents=True)
    storage = {"repository": repository, "branch": "main"}
    return derive_tenant_file(checkout / "tenants" / "wg.toml", overrides={"code_storage": storage, **overrides})


def _in_object_storage(tmp_path: Path) -> dict[str, str]:
    """Stores on the S3 API on loopback (the `s3_api` fixture), as a managed pool's runs need them."""
    from sandbox.s3_api import BUCKET

    return {
        "artifact_store_url": f"s3://{BUCKET}/{tmp_path.name}/artifacts",
        "ledger_url": f"s3://{BUCKET}/{tmp_path.name}/ledger",
    }


def test_a_local_store_is_refused_where_runs_are_containers(tmp_path: Path) -> None:
    """A managed pool's run is a throw-away container: artifacts written to its folders never reach parity or CI."""
    from typer.testing import CliRunner

    from cli.app import app
    from migration.apply import apply_deployment
    from migration.doctor import storage_checks
    from migration.errors import ApplyError

    local = _cloned_tenant(tmp_path / "checkout", "https://github.com/wg/dbt-wg.git")
    out = tmp_path / "prefect.yaml"
    args = ["emit", "--from-file", str(SEED), "--allow-blockers", "--output", str(out), "--tenant-file", str(local)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert "artifact_store_url" in refused.stderr and "is a local folder" in refused.stderr
    assert "s3://" in refused.stderr and "Traceback" not in refused.output
    assert not out.exists()
    spec = build_deployment(_plan(SEED), load_tenant(local), versions=_versions())
    with pytest.raises(ApplyError, match=r"artifact_store_url .* is a local folder"):
        apply_deployment(spec, dry_run=True, parameter_schema={})
    tenant = load_tenant(local)
    checks = {check.name: check for check in storage_checks(tenant, Workspace(tenant).doctor_services())}
    assert {name: check.status.value for name, check in checks.items()} == {
        "artifact store": "fail",
        "ledger": "fail",
        "parity reports": "fail",
    }
    assert "s3://" in checks["ledger"].fix and "ledger_url" in checks["ledger"].fix

    # A process pool's runs happen on this machine: the same folders are fine there.
    process = {"work_pool": "local", "runtime": {"pool_type": "process", "dependencies": "preinstalled"}}
    on_process = _cloned_tenant(tmp_path / "process", "https://github.com/wg/dbt-wg.git", **process)
    on_process_tenant = load_tenant(on_process)
    services = Workspace(on_process_tenant).doctor_services()
    assert {check.status.value for check in storage_checks(on_process_tenant, services)} == {"ok"}


@pytest.mark.usefixtures("s3_api")
def test_emit_refuses_the_placeholder_repository_like_apply(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from migration.apply import apply_deployment
    from migration.errors import ApplyError

    out = tmp_path / "prefect.yaml"
    args = ["emit", "--from-file", str(SEED), "--allow-blockers", "--output", str(out)]
    refused = CliRunner().invoke(app, [*args, "--tenant-file", str(settings_path())])
    assert refused.exit_code == 2, refused.output
    assert "[tenant.code_storage] repository is still the placeholder" in refused.stderr
    assert "Traceback" not in refused.output and "prefect-cloud deploy" not in refused.output
    assert list(tmp_path.iterdir()) == []
    # the same check as apply's
    with pytest.raises(ApplyError, match="repository is still the placeholder"):
        apply_deployment(_spec(SEED), dry_run=True, parameter_schema={})

    tenant = _cloned_tenant(tmp_path / "checkout", "https://github.com/wg/dbt-wg.git", **_in_object_storage(tmp_path))
    written = CliRunner().invoke(app, [*args, "--tenant-file", str(tenant)])
    assert written.exit_code == 0, written.output
    assert "OWNER/REPO" not in out.read_text() and "OWNER/REPO" not in written.stdout
    assert "--from wg/dbt-wg" in written.stdout


def test_no_quickstart_line_for_code_outside_github(tmp_path: Path) -> None:
    tenant = load_tenant(_cloned_tenant(tmp_path, "https://gitlab.example.com/wg/dbt-wg.git"))
    spec = build_deployment(_plan(SEED), tenant, versions=_versions())
    assert quickstart_command(spec, _versions(), python="3.12") is None
    assert quickstart_command(_spec(SEED), _versions(), python="3.12") is None  # the placeholder
