"""The fields of a dbt target profile and the environment variables they are read from.

Kept apart from `dbt2prefect.profiles` (which defines a Prefect block) so that planning and rendering code, such as
the CI workflow, use them without loading Prefect.
"""

from __future__ import annotations

from typing import Literal

Adapter = Literal["snowflake", "duckdb"]
REQUIRED: dict[str, tuple[str, ...]] = {
    "snowflake": ("account", "user", "database", "warehouse", "schema"),
    "duckdb": ("path",),
}
SNOWFLAKE_ENV = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "schema": "SNOWFLAKE_SCHEMA",
    "authenticator": "SNOWFLAKE_AUTHENTICATOR",
}

ADAPTER_PACKAGES: dict[str, tuple[str, ...]] = {
    "snowflake": ("dbt-snowflake", "prefect-snowflake"),
    "duckdb": ("dbt-duckdb",),
    "bigquery": ("dbt-bigquery",),
    "databricks": ("dbt-databricks",),
    "redshift": ("dbt-redshift",),
    "postgres": ("dbt-postgres",),
}
"""The packages a run needs for each dbt adapter type (a profile output's `type`)."""
