"""Batched row counts, columns and fingerprints: DuckDB files and Snowflake (real connector against fakesnow)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import fakesnow
import pytest

from dbt2prefect.errors import ConfigError
from dbt2prefect.warehouse import DuckDBWarehouse, Relation, warehouse_from_profile_output


def _duckdb(path: Path, statements: list[str]) -> Path:
    with duckdb.connect(str(path)) as conn:
        for sql in statements:
            conn.execute(sql)
    return path


def test_duckdb_counts_tables_and_views_with_two_queries(tmp_path: Path) -> None:
    path = _duckdb(
        tmp_path / "prod.duckdb",
        [
            "create schema marts",
            "create table marts.orders as select range as id from range(100)",
            "create view marts.big_orders as select * from marts.orders where id >= 90",
            "create schema staging",
            "create table staging.customers as select range as id, 'x' as name from range(7)",
        ],
    )
    orders, big, customers = (
        Relation("prod", "marts", "orders"),
        Relation("prod", "marts", "big_orders"),
        Relation("prod", "staging", "customers"),
    )
    missing = Relation("prod", "marts", "not_built")
    warehouse = warehouse_from_profile_output({"type": "duckdb", "path": str(path)})
    stats = warehouse.relation_stats([orders, big, customers, missing])
    assert {r: (s.exists, s.kind, s.row_count) for r, s in stats.items()} == {
        orders: (True, "table", 100),
        big: (True, "view", 10),
        customers: (True, "table", 7),
        missing: (False, None, None),
    }
    assert warehouse.queries_issued == 2
    assert stats[customers].column_types() == {"id": "BIGINT", "name": "VARCHAR"}
    assert stats[big].column_types() == {"id": "BIGINT"}
    warehouse.close()


def test_duckdb_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    from dbt2prefect.warehouse import WarehouseError

    with pytest.raises(WarehouseError, match=r"parity\.duckdb does not exist"):
        DuckDBWarehouse(tmp_path / "parity.duckdb").relation_stats([Relation("parity", "marts", "x")])


def test_unsupported_adapter_is_bad_config() -> None:
    with pytest.raises(ConfigError, match="not 'bigquery'"):
        warehouse_from_profile_output({"type": "bigquery"})


SECRET = "s3cr3t-pa55word"


def test_snowflake_tables_from_metadata_views_by_one_count(tmp_path: Path) -> None:
    with fakesnow.patch():
        import snowflake.connector

        setup = snowflake.connector.connect(database="PROD", schema="MARTS")
        cur = setup.cursor()
        cur.execute("create table orders (id int, amount number(10,2))")
        cur.execute("insert into orders select range, 1.5 from range(1234)")
        cur.execute("create view v_orders as select * from orders where id < 10")
        cur.execute("create schema PROD.STAGING")
        cur.execute("create table PROD.STAGING.customers (id int)")
        cur.execute("insert into PROD.STAGING.customers values (1), (2), (3)")

        warehouse = warehouse_from_profile_output(
            {
                "type": "snowflake",
                "account": "wg",
                "user": "parity",
                "password": SECRET,
                "database": "PROD",
                "warehouse": "WH",
                "role": "R",
            }
        )
        assert SECRET not in repr(warehouse)
        relations = [
            Relation("prod", "marts", "orders"),
            Relation("prod", "marts", "v_orders"),
            Relation("prod", "staging", "customers"),
            Relation("prod", "marts", "gone"),
        ]
        stats = warehouse.relation_stats(relations)
        assert [(stats[r].kind, stats[r].row_count) for r in relations] == [
            ("table", 1234),
            ("view", 10),
            ("table", 3),
            (None, None),
        ]
        # One INFORMATION_SCHEMA query for the database, one count(*) for the single view.
        assert warehouse.queries_issued == 2
        assert stats[relations[0]].column_types() == {"id": "NUMBER", "amount": "NUMBER"}
        assert stats[relations[1]].column_types() == {"id": "NUMBER", "amount": "NUMBER"}
        warehouse.close()


def test_snowflake_tables_only_needs_one_query() -> None:
    with fakesnow.patch():
        import snowflake.connector

        cur = snowflake.connector.connect(database="PARITY", schema="MARTS").cursor()
        cur.execute("create table orders (id int)")
        cur.execute("insert into orders values (1)")
        warehouse = warehouse_from_profile_output(
            {"type": "snowflake", "account": "wg", "user": "u", "password": SECRET}
        )
        stats = warehouse.relation_stats([Relation("PARITY", "MARTS", "ORDERS")])
        assert stats[Relation("PARITY", "MARTS", "ORDERS")].row_count == 1
        assert warehouse.queries_issued == 1
