"""A tenant settings file for a small dbt project of a test, on a local DuckDB profile (the project's own
profiles.yml), with its store and ledger in the test's folder."""

from __future__ import annotations

from pathlib import Path


def local_tenant_file(root: Path, project: Path, name: str, tables: str = "") -> Path:
    """`<root>/<name>.toml`: tenant `name` (deployment `<name>_dbt`, target `local`, blocks prefixed `name`), then
    `tables` (TOML tables such as `[tenant.retries]`) as given."""
    settings = root / f"{name}.toml"
    settings.write_text(
        f"""[tenant]
name = "{name}"
project_dir = "{project}"
profile_name = "{name}"
deployment_name = "{name}_dbt"
default_target = "local"
targets = ["local"]
local_profiles_dir = "{project}"
artifact_store_url = "{root / "store"}"
ledger_url = "{root / "ledger"}"

[tenant.blocks]
profile_prefix = "{name}"
dbt_cloud_token_block = "{name}-token"
{tables}""",
        encoding="utf-8",
    )
    return settings
