"""The runtime installs what the tenant's runs need, pinned whole (issue 31 point 2, issue 25 items 1 and 7)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from dbt2prefect.errors import ConfigError
from dbt2prefect.tenant import REPO_ROOT, CodeStorage, TenantSettings, load_tenant
from migration.deployment import DeploymentError, build_deployment, job_variables, runtime_versions
from migration.emit import quickstart_command
from tests.migration.test_emit_prefect_yaml import SEED, _plan

SHOP = REPO_ROOT / "tests" / "tenants" / "shop.toml"


def _managed(tenant: TenantSettings, **runtime: object) -> TenantSettings:
    """The tenant on a managed pool installing pip_packages (shop itself runs on a process pool)."""
    settings = {"pool_type": "prefect:managed", "dependencies": "pip_packages", **runtime}
    return tenant.model_copy(update={"runtime": tenant.runtime.model_copy(update=settings)})


def _packages(tenant: TenantSettings) -> list[str]:
    return list(job_variables(tenant, runtime_versions(tenant))["pip_packages"])


def test_a_duckdb_tenant_gets_the_duckdb_adapter_not_snowflakes() -> None:
    shop = _managed(load_tenant(SHOP))  # its profiles.yml says type: duckdb
    packages = _packages(shop)
    assert "dbt-duckdb==1.11.1" in packages and "duckdb==2.0.1" in packages, "the adapter and its dependencies"
    assert not any(p.startswith(("dbt-snowflake==", "snowflake-connector-python==")) for p in packages)


def test_a_snowflake_tenant_gets_snowflakes_adapter_and_the_whole_runtime_pinned() -> None:
    variables = job_variables(load_tenant(), runtime_versions(load_tenant()))
    packages = variables["pip_packages"]
    assert "dbt-snowflake==1.12.4" in packages and "prefect-snowflake==0.28.9" in packages
    assert not any(p.startswith("dbt-duckdb==") for p in packages)
    # Not only the top-level packages: their pinned dependencies too, so a run start installs what was tested.
    assert any(p.startswith("pydantic==") for p in packages) and any(
        p.startswith("snowflake-connector-python==") for p in packages
    )
    assert not any(p.startswith(("pytest==", "ruff==", "hypothesis==")) for p in packages), "no dev tools"
    assert variables["image"] == "prefecthq/prefect-client:3.9.1-python3.12"


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("s3://wg-dbt/runs", "s3fs==2026.9.0"),
        ("gs://wg-dbt/runs", "gcsfs==2026.8.2"),
        ("az://wg/runs", "adlfs==2026.8.0"),
    ],
)
def test_the_stores_fsspec_backend_comes_from_its_url_scheme(url: str, backend: str) -> None:
    tenant = load_tenant().model_copy(update={"artifact_store_url": url})
    assert backend in _packages(tenant)
    assert not any(p.startswith(("s3fs==", "gcsfs==", "adlfs==")) for p in _packages(load_tenant())), "a local store"


def test_a_tenant_setting_adds_packages_pinned_or_its_own_version() -> None:
    tenant = _managed(load_tenant(), packages=("requests", "dbt-bigquery==1.10.0"))
    packages = _packages(tenant)
    assert "dbt-bigquery==1.10.0" in packages and any(p.startswith("requests==") for p in packages)
    unpinned = _managed(load_tenant(), packages=("not-pinned-anywhere",))
    with pytest.raises(DeploymentError, match="not-pinned-anywhere"):
        runtime_versions(unpinned)


def test_no_adapter_known_is_a_clear_error() -> None:
    tenant = load_tenant().model_copy(
        update={"local_profiles_dir": None, "runtime": load_tenant().runtime.model_copy(update={"adapters": ()})}
    )
    with pytest.raises(DeploymentError, match=r"\[tenant.runtime\] adapters"):
        runtime_versions(tenant)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('adapters = ["oracle"]', "unknown adapter 'oracle'"),
        ('packages = ["dbt-bigquery>=1"]', "must be a name or 'name==version'"),
    ],
)
def test_bad_runtime_settings_are_named(line: str, problem: str, tmp_path: Path) -> None:
    text = SHOP.read_text(encoding="utf-8").replace(
        'dependencies = "preinstalled"', f'dependencies = "preinstalled"\n{line}'
    )
    for name in ("project_dir", "local_profiles_dir"):
        text = text.replace(f'{name} = "shop"', f'{name} = "{SHOP.parent / "shop"}"')
    settings = tmp_path / "shop.toml"
    settings.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_tenant(settings)
    assert problem in str(info.value) and "runtime" in str(info.value)


def test_the_quickstart_line_names_the_tenants_adapter() -> None:
    shop = _managed(load_tenant(SHOP))
    shop = shop.model_copy(update={"code_storage": CodeStorage(repository="https://github.com/wg/shop.git")})
    spec = build_deployment(_plan(SEED), shop)
    line = quickstart_command(spec, runtime_versions(shop), python="3.12")
    assert line is not None
    assert "--with dbt-duckdb==1.11.1" in line and "dbt-snowflake" not in line


def _on_github(tmp_path: Path) -> Path:
    """The shipped tenant's settings with its code on GitHub (a checkout of it), not the placeholder, and its stores
    in object storage (the S3 API on loopback), as a managed pool's runs need them."""
    from sandbox.s3_api import BUCKET
    from sandbox.stack import derive_tenant_file

    (tmp_path / "checkout" / ".git").mkdir(parents=True)
    overrides = {
        "code_storage": {"repository": "https://github.com/wg/dbt-wg.git", "branch": "main"},
        "artifact_store_url": f"s3://{BUCKET}/{tmp_path.name}/artifacts",
        "ledger_url": f"s3://{BUCKET}/{tmp_path.name}/ledger",
    }
    return derive_tenant_file(tmp_path / "checkout" / "tenants" / "wg.toml", overrides=overrides)


@pytest.mark.usefixtures("s3_api")
def test_emit_prints_the_tenants_adapter(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "emit",
            "--from-file",
            str(SEED),
            "--allow-blockers",
            "--output",
            str(tmp_path / "p.yaml"),
            "--tenant-file",
            str(_on_github(tmp_path)),
        ],
        env={"COLUMNS": "2000"},
    )
    assert result.exit_code == 0, result.output
    assert "--with dbt-snowflake==1.12.4" in result.output and "dbt-duckdb" not in result.output


def test_a_tenant_that_installs_nothing_needs_no_adapter_named() -> None:
    shop = load_tenant(SHOP)  # a process pool, packages preinstalled
    unknown = shop.model_copy(update={"local_profiles_dir": None})
    spec = build_deployment(_plan(SEED), unknown)
    assert "pip_packages" not in spec.job_variables
