"""Where the sandbox's DuckDB warehouse lives and how dbt connects to it.

The sandbox warehouse is a folder of DuckDB files: one ``raw.duckdb`` holding the source
systems' tables (written by :mod:`sandbox.datagen`) and one file per dbt target
(``local``, ``dev``, ``prod``, ``parity``). Every target attaches the raw file read-only
under the alias ``raw``, mirroring the ``RAW`` database on Snowflake, so the dbt project
reads its sources from the same place whatever the target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "ENV_VAR",
    "RAW_DB",
    "TARGET_DBS",
    "database_path",
    "duckdb_output",
    "warehouse_dir",
]

ENV_VAR = "DBT2PREFECT_WAREHOUSE_DIR"
"""Environment variable that overrides the warehouse folder."""

RAW_DB = "raw"
"""Name (file stem and attach alias) of the raw-data database."""

TARGET_DBS: tuple[str, ...] = ("local", "dev", "prod", "parity")
"""One DuckDB file per dbt target."""

_REPO_ROOT = Path(__file__).resolve().parent.parent


def warehouse_dir() -> Path:
    """Return the warehouse folder: ``$DBT2PREFECT_WAREHOUSE_DIR`` or ``<repo>/.dbt2prefect/warehouse``."""
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser()
    return _REPO_ROOT / ".dbt2prefect" / "warehouse"


def database_path(name: str, base: Path | None = None) -> Path:
    """Return the path of the DuckDB file for database ``name`` (``<dir>/<name>.duckdb``)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid database name: {name!r}")
    return (base if base is not None else warehouse_dir()) / f"{name}.duckdb"


def duckdb_output(
    target: str, base: Path | None = None, threads: int = 4, raw_catalog: str | None = RAW_DB
) -> dict[str, Any]:
    """Return the dbt profile output for the DuckDB database of ``target``.

    The raw database is attached read-only under the alias ``raw_catalog`` (None: not attached, for a
    project whose raw data are its seeds; a project with a schema named like the alias needs another
    alias, or DuckDB reports an ambiguous reference). The schema is only a fallback because the dbt
    project places every node with its own schema configs.
    """
    if threads < 1:
        raise ValueError("threads must be at least 1")
    output: dict[str, Any] = {"type": "duckdb", "path": str(database_path(target, base))}
    if raw_catalog:
        output["attach"] = [{"path": str(database_path(RAW_DB, base)), "alias": raw_catalog, "read_only": True}]
    return {**output, "threads": threads, "schema": "main"}
