"""Sandbox stack pieces that need no Prefect server: work folder safety, ports, the stack's tenant settings."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.tenant import REPO_ROOT, load_tenant, settings_path
from sandbox.dbt_cloud import SandboxDbtCloud
from sandbox.errors import PortInUseError, WorkdirError
from sandbox.stack import (
    MARKER,
    WORK_POOL,
    PrefectServer,
    StackPaths,
    check_port_free,
    prepare_workdir,
    write_tenant_file,
)


def test_fresh_empties_only_a_folder_the_sandbox_made(tmp_path: Path) -> None:
    paths = prepare_workdir(tmp_path / "work", fresh=True)
    (paths.root / "leftover.txt").write_text("from a previous run")
    prepare_workdir(paths.root, fresh=True)
    assert sorted(p.name for p in paths.root.iterdir()) == [MARKER]


def test_fresh_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("someone's files")
    with pytest.raises(WorkdirError, match="not empty and was not made by dbt2prefect"):
        prepare_workdir(tmp_path, fresh=True)
    assert (tmp_path / "notes.txt").exists()


def test_a_taken_port_is_a_clear_error_naming_the_option(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"port {port} .* in use; pass another --prefect-port"):
            check_port_free(port, "--prefect-port")
        with pytest.raises(PortInUseError):
            PrefectServer.start(tmp_path / "prefect", port=port)
        result = CliRunner().invoke(
            app, ["sandbox", "up", "--workdir", str(tmp_path / "up"), "--prefect-port", str(port)]
        )
    assert result.exit_code == 2, result.output
    assert "--prefect-port" in result.output and "Traceback" not in result.output


def test_tenant_settings_point_at_the_sandbox_and_keep_the_project(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    original = load_tenant()
    with SandboxDbtCloud.start() as cloud:
        written = write_tenant_file(paths, cloud, acknowledged=["job_chaining:1"])
        tenant = load_tenant(written)
        assert tenant.dbt_cloud.host == cloud.url and tenant.dbt_cloud.account_id == cloud.account_id
        assert cloud.token not in written.read_text()
    assert tenant.project_dir == original.project_dir
    assert tenant.local_profiles_dir == original.local_profiles_dir
    assert Path(tenant.artifact_store_url) == paths.artifacts and Path(tenant.ledger_url) == paths.ledger
    assert "job_chaining:1" in tenant.acknowledged_findings
    # Workers of the stack's process pool run this checkout in place, with this environment's packages.
    assert (tenant.work_pool, tenant.runtime.pool_type, tenant.runtime.dependencies) == (
        WORK_POOL,
        "process",
        "preinstalled",
    )
    assert tenant.code_storage is not None and tenant.code_storage.directory == REPO_ROOT
    # Notifications keep their destinations and block names; the blocks post to the sandbox's sink.
    assert tenant.notifications == {
        destination: f"custom-webhook/{block.partition('/')[2]}"
        for destination, block in original.notifications.items()
    }
    assert original.notifications, "the tenant names notification blocks"
    changed = {"dbt_cloud", "artifact_store_url", "ledger_url", "acknowledged_findings", "settings_file"}
    changed |= {"work_pool", "code_storage", "runtime", "notifications"}
    # `blocks register` on the stack's tenant saves the stack's DuckDB blocks (its warehouse folder).
    assert tenant.sandbox == original.sandbox.model_copy(update={"warehouse": paths.warehouse})
    changed.add("sandbox")
    assert tenant.model_dump(exclude=changed) == original.model_dump(exclude=changed)
    parity = settings_path().with_name(f"{settings_path().stem}.parity.toml")
    if parity.exists():
        assert (written.parent / parity.name).read_text() == parity.read_text()


def test_a_tenants_sandbox_settings_are_checked_with_what_to_fix(tmp_path: Path) -> None:
    from dbt2prefect.errors import ConfigError
    from sandbox.stack import start_dbt_cloud

    def tenant_file(sandbox: str) -> Path:
        text = settings_path().read_text().split("[tenant.sandbox]")[0]
        path = tmp_path / "t.toml"
        path.write_text(
            text.replace('project_dir = "dbt_williamgrant"', f'project_dir = "{load_tenant().project_dir}"')
            + "[tenant.sandbox]\n"
            + sandbox
        )
        return path

    with pytest.raises(ConfigError, match="raw_catalog needs raw_loader"):
        load_tenant(tenant_file('raw_catalog = "src"\n'))
    with pytest.raises(ConfigError, match=r"must be '<file>.py:<function>'"):
        load_tenant(tenant_file('raw_loader = "sandbox.datagen"\n'))
    with pytest.raises(ConfigError, match=r"does not name importable modules"):
        load_tenant(tenant_file('raw_loader = "no_such_module:load"\n'))
    bad_jobs = tmp_path / "jobs.json"
    bad_jobs.write_text("{}")
    with pytest.raises(ConfigError, match=r"\[tenant.sandbox\] jobs file .*jobs.json must be a list response"):
        start_dbt_cloud(StackPaths(tmp_path / "stack"), load_tenant(tenant_file(f'jobs_file = "{bad_jobs}"\n')))
