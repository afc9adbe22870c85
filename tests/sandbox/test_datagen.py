"""The raw-data generator is deterministic, scales, and matches the dbt project's sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from sandbox.datagen import SOURCE_TABLES, generate
from sandbox.warehouse import RAW_DB, TARGET_DBS, database_path, duckdb_output, warehouse_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES_YML = REPO_ROOT / "tenants" / "dbt_williamgrant" / "models" / "staging" / "_sources.yml"
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def _checksums(path: Path) -> dict[str, tuple[int, str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out: dict[str, tuple[int, str]] = {}
        for name in SOURCE_TABLES:
            row = con.execute(
                f"select count(*), md5(coalesce(string_agg(cast(t as varchar), chr(10) "
                f"order by cast(t as varchar)), '')) from {name} t"
            ).fetchone()
            assert row is not None
            out[name] = (int(row[0]), str(row[1]))
        return out
    finally:
        con.close()


def _declared_sources() -> dict[str, list[str]]:
    doc: dict[str, Any] = yaml.safe_load(SOURCES_YML.read_text())
    declared: dict[str, list[str]] = {}
    for source in doc["sources"]:
        for table in source["tables"]:
            declared[f"{source['schema']}.{table['name']}"] = [c["name"] for c in table["columns"]]
    return declared


def test_same_seed_gives_identical_data(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", seed=7, now=NOW)
    second = generate(tmp_path / "b", seed=7, now=NOW)
    assert first.row_counts == second.row_counts
    assert _checksums(first.raw_db_path) == _checksums(second.raw_db_path)


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", seed=1, now=NOW)
    second = generate(tmp_path / "b", seed=2, now=NOW)
    assert _checksums(first.raw_db_path)["erp.orders"] != _checksums(second.raw_db_path)["erp.orders"]


def test_scale_changes_row_counts(tmp_path: Path) -> None:
    small = generate(tmp_path / "small", scale=1.0, now=NOW)
    larger = generate(tmp_path / "larger", scale=3.0, now=NOW)
    assert 2_000 < small.total_rows < 20_000
    for table in ("erp.orders", "erp.order_lines", "logistics.depletions", "finance.invoices"):
        assert larger.row_counts[table] > 2 * small.row_counts[table]
    assert all(count > 0 for count in small.row_counts.values())


def test_regeneration_replaces_the_file_atomically(tmp_path: Path) -> None:
    first = generate(tmp_path, seed=3, now=NOW)
    again = generate(tmp_path, seed=3, now=NOW)
    assert first.raw_db_path == again.raw_db_path == tmp_path / "raw.duckdb"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.duckdb"]


def test_loaded_at_is_recent(tmp_path: Path) -> None:
    result = generate(tmp_path, now=NOW)
    con = duckdb.connect(str(result.raw_db_path), read_only=True)
    try:
        for name in SOURCE_TABLES:
            row = con.execute(f"select min(loaded_at), max(loaded_at) from {name}").fetchone()
            assert row is not None
            oldest, newest = row
            naive_now = NOW.replace(tzinfo=None)
            assert newest <= naive_now
            assert (naive_now - oldest).total_seconds() <= 90 * 60, name
    finally:
        con.close()


def test_declared_sources_exist_with_their_columns(tmp_path: Path) -> None:
    result = generate(tmp_path, now=NOW)
    declared = _declared_sources()
    assert set(declared) == set(SOURCE_TABLES)
    con = duckdb.connect(str(result.raw_db_path), read_only=True)
    try:
        for name, columns in declared.items():
            schema, table = name.split(".")
            actual = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            assert actual == columns, name
    finally:
        con.close()


def test_invalid_scale_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, scale=0)


def test_warehouse_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT2PREFECT_WAREHOUSE_DIR", str(tmp_path))
    assert warehouse_dir() == tmp_path
    assert database_path("prod") == tmp_path / "prod.duckdb"
    assert TARGET_DBS == ("local", "dev", "prod", "parity")
    output = duckdb_output("parity", threads=2)
    assert output == {
        "type": "duckdb",
        "path": str(tmp_path / "parity.duckdb"),
        "attach": [{"path": str(tmp_path / f"{RAW_DB}.duckdb"), "alias": "raw", "read_only": True}],
        "threads": 2,
        "schema": "main",
    }
    monkeypatch.delenv("DBT2PREFECT_WAREHOUSE_DIR")
    assert warehouse_dir() == REPO_ROOT / ".dbt2prefect" / "warehouse"
    with pytest.raises(ValueError):
        database_path("../escape")
