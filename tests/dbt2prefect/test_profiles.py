"""Profiles come from Prefect blocks at run time and exist on disk only inside a private temp dir."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.workspace import Workspace
from cli.app import app
from dbt2prefect.errors import ProfileError
from dbt2prefect.profiles import block_from_env, private_profiles_dir, profile_from_block, profile_from_local
from tests.snowflake_keys import pem_body_line, pem_key

FAKE_PASSPHRASE = "passphrase-5d2e8b"
FAKE_KEY = pem_key(FAKE_PASSPHRASE)
KEY_MATERIAL = pem_body_line(FAKE_KEY)
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "wg-eu1",
    "SNOWFLAKE_USER": "svc_dbt",
    "SNOWFLAKE_ROLE": "transformer",
    "SNOWFLAKE_WAREHOUSE": "transforming",
    "SNOWFLAKE_DATABASE": "PARITY",
    "SNOWFLAKE_SCHEMA": "analytics",
    "SNOWFLAKE_PRIVATE_KEY": FAKE_KEY,
    "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE": FAKE_PASSPHRASE,
}


def test_key_pair_block_round_trip_builds_the_profile(prefect_api: None) -> None:
    block_from_env("snowflake", SNOWFLAKE_ENV).save("dbt-wg-test-keypair", overwrite=True)
    profile = profile_from_block("dbt_williamgrant", "parity", "dbt-wg-test-keypair")
    output = profile["dbt_williamgrant"]["outputs"]["parity"]
    assert profile["dbt_williamgrant"]["target"] == "parity"
    assert output["type"] == "snowflake"
    assert output["private_key"] == FAKE_KEY
    assert output["private_key_passphrase"] == FAKE_PASSPHRASE
    assert "password" not in output
    assert output["database"] == "PARITY" and output["threads"] == 8


def test_block_repr_hides_secrets() -> None:
    block = block_from_env("snowflake", {**SNOWFLAKE_ENV, "SNOWFLAKE_PASSWORD": "pw-should-not-show"})
    text = repr(block) + str(block) + block.model_dump_json()
    assert KEY_MATERIAL not in text and FAKE_PASSPHRASE not in text and "pw-should-not-show" not in text


def test_missing_block_says_how_to_create_it(prefect_api: None) -> None:
    with pytest.raises(ProfileError, match="dbt2prefect blocks register"):
        profile_from_block("dbt_williamgrant", "prod", "dbt-wg-no-such-block")


def test_missing_environment_names_the_variables() -> None:
    env = {k: v for k, v in SNOWFLAKE_ENV.items() if k not in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_WAREHOUSE")}
    with pytest.raises(ProfileError, match="SNOWFLAKE_ACCOUNT, SNOWFLAKE_WAREHOUSE"):
        block_from_env("snowflake", env)


def test_no_credentials_is_refused() -> None:
    env = {k: v for k, v in SNOWFLAKE_ENV.items() if "PRIVATE_KEY" not in k}
    with pytest.raises(ProfileError, match="SNOWFLAKE_PRIVATE_KEY_PATH"):
        block_from_env("snowflake", env)


def test_private_dir_is_0700_and_removed_after_success_and_failure() -> None:
    profile = {"p": {"target": "t", "outputs": {"t": {"type": "duckdb", "path": "x.duckdb"}}}}
    with private_profiles_dir(profile) as folder:
        seen = folder
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE((folder / "profiles.yml").stat().st_mode) == 0o600
        assert yaml.safe_load((folder / "profiles.yml").read_text()) == profile
    assert not seen.exists()
    with pytest.raises(RuntimeError), private_profiles_dir(profile) as folder:
        seen = folder
        raise RuntimeError("dbt failed")
    assert not seen.exists()


def test_local_profile_must_hold_the_target(tmp_path: Path) -> None:
    (tmp_path / "profiles.yml").write_text("p:\n  target: local\n  outputs:\n    local: {type: duckdb, path: a}\n")
    assert profile_from_local(tmp_path, "p", "local")["p"]["target"] == "local"
    with pytest.raises(ProfileError, match="no target 'prod'"):
        profile_from_local(tmp_path, "p", "prod")


def test_blocks_register_cli_never_echoes_secrets(prefect_api: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["blocks", "register", "--target", "prod"])
    assert result.exit_code == 0, result.output
    assert "dbt-wg-prod" in result.output
    assert KEY_MATERIAL not in result.output and FAKE_PASSPHRASE not in result.output
    bad = CliRunner().invoke(app, ["blocks", "register", "--target", "staging"])
    assert bad.exit_code == 2 and "--target 'staging'" in bad.output


def test_connection_block_runs_under_the_jobs_target_name() -> None:
    from dbt2prefect.errors import ParameterError
    from dbt2prefect.params import validate
    from dbt2prefect.run_job import build_profile, execute
    from dbt2prefect.tenant import load_tenant

    tenant = load_tenant()
    params = validate({"target": "default", "connection": "local", "profiles_strategy": "local"})
    profile = build_profile(params, tenant, "default", "local", tenant.project_dir)[tenant.profile_name]
    assert profile["target"] == "default" and list(profile["outputs"]) == ["default"]
    assert profile["outputs"]["default"]["type"] == "duckdb"
    with pytest.raises(ParameterError, match="pass `connection`"):
        execute(validate({"target": "default"}), tenant, "no-run", store=Workspace(tenant).store)
    with pytest.raises(ParameterError, match="parameter 'connection': 'staging'"):
        execute(
            validate({"target": "default", "connection": "staging"}), tenant, "no-run", store=Workspace(tenant).store
        )


def test_relative_duckdb_paths_of_a_local_profile_point_into_the_project_as_for_bare_dbt(tmp_path: Path) -> None:
    from dbt2prefect.params import validate
    from dbt2prefect.run_job import build_profile
    from dbt2prefect.tenant import load_tenant

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    output = {
        "type": "duckdb",
        "path": "target/local.duckdb",
        "attach": [{"path": "../raw.duckdb", "alias": "src"}, {"path": "md:shared", "alias": "cloud"}],
    }
    templated = {"type": "duckdb", "path": "{{ env_var('WH') }}/dev.duckdb"}
    (profiles / "profiles.yml").write_text(
        yaml.safe_dump({"default": {"target": "local", "outputs": {"local": output, "dev": templated}}})
    )
    tenant = load_tenant().model_copy(update={"profile_name": "default", "local_profiles_dir": profiles})
    project = tmp_path / "project"
    local = validate({"target": "local", "profiles_strategy": "local"})
    body = build_profile(local, tenant, "local", "local", project)["default"]["outputs"]["local"]
    assert body["path"] == str(project / "target" / "local.duckdb")
    assert [a["path"] for a in body["attach"]] == [str(project / ".." / "raw.duckdb"), "md:shared"]
    dev = validate({"target": "dev", "profiles_strategy": "local"})
    assert build_profile(dev, tenant, "dev", "dev", project)["default"]["outputs"]["dev"] == templated
