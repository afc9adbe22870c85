"""doctor and `blocks register` on DuckDB targets: a database file that dbt creates on its first run may be missing
(a fresh sandbox), and on a sandbox's tenant `blocks register` saves the sandbox's DuckDB block, no SNOWFLAKE_*."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.profiles import block_from_env, load_target_profile
from dbt2prefect.tenant import load_tenant
from migration.doctor import CheckStatus, profile_check
from sandbox.stack import derive_tenant_file
from sandbox.warehouse import duckdb_output

pytestmark = pytest.mark.usefixtures("prefect_api")


def _tenant_file(tmp_path: Path, prefix: str, **sandbox: str) -> Path:
    overrides: dict[str, object] = {"blocks": {"profile_prefix": prefix, "dbt_cloud_token_block": f"{prefix}-token"}}
    if sandbox:
        overrides["sandbox"] = sandbox
    return derive_tenant_file(tmp_path / f"{prefix}.toml", overrides=overrides)


def test_a_duckdb_file_dbt_has_not_created_yet_passes_when_its_folder_and_attachments_exist(tmp_path: Path) -> None:
    tenant = load_tenant(_tenant_file(tmp_path, "doctor-duck"))
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    (warehouse / "raw.duckdb").touch()
    block_from_env("duckdb", {}, duckdb_output("dev", warehouse)).save("doctor-duck-dev", overwrite=True)
    check = profile_check(tenant, "dev")
    assert check.status is CheckStatus.OK, check
    assert "dev.duckdb does not exist yet; dbt creates it on the first run" in check.detail
    assert not (warehouse / "dev.duckdb").exists()  # the check creates nothing

    (warehouse / "raw.duckdb").unlink()  # an attached database dbt does not create: connecting says what is missing
    failed = profile_check(tenant, "dev")
    assert failed.status is CheckStatus.FAIL and "does not exist" in failed.detail
    block_from_env("duckdb", {}, duckdb_output("dev", tmp_path / "no-such-folder")).save(
        "doctor-duck-dev", overwrite=True
    )
    assert profile_check(tenant, "dev").status is CheckStatus.FAIL


def test_blocks_register_on_a_sandbox_tenant_saves_its_duckdb_block_without_snowflake_variables(
    tmp_path: Path,
) -> None:
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    tenant_file = _tenant_file(tmp_path, "sandbox-duck", warehouse=str(warehouse))
    tenant = load_tenant(tenant_file)
    assert tenant.sandbox.warehouse == warehouse
    env = {name: "" for name in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD")}
    result = CliRunner().invoke(
        app, ["blocks", "register", "--target", "dev", "--tenant-file", str(tenant_file)], env=env
    )
    assert result.exit_code == 0, result.output
    assert "SNOWFLAKE" not in result.output and "sandbox-duck-dev saved (duckdb" in result.output
    output = load_target_profile("sandbox-duck-dev").output("sandbox-duck-dev")
    assert output == {**duckdb_output("dev", warehouse, raw_catalog=tenant.sandbox.raw_catalog), "type": "duckdb"}

    # Elsewhere the default stays Snowflake, which names the variables it needs.
    plain = _tenant_file(tmp_path, "plain-duck")
    result = CliRunner().invoke(app, ["blocks", "register", "--target", "dev", "--tenant-file", str(plain)], env=env)
    assert result.exit_code == 2 and "SNOWFLAKE_" in result.output and "Traceback" not in result.output
