"""Batched row counts, columns and fingerprints: DuckDB files and Snowflake (real connector against fakesnow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import fakesnow
import pytest

from dbt2prefect.errors import ConfigError
from dbt2prefect.warehouse import DuckDBWarehouse, Relation, RelationStats, warehouse_from_profile_output


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


def _raw_database(tmp_path: Path) -> Path:
    raw = tmp_path / "raw.duckdb"
    with duckdb.connect(str(raw)) as con:
        con.execute("create table orders as select * from range(3) t(id)")
    return raw


@pytest.mark.parametrize("held", [False, True])
def test_duckdb_reads_an_attached_database_whether_or_not_its_instance_has_it_already(
    tmp_path: Path, held: bool
) -> None:
    """A fresh read-only instance attaches the raw database; the instance an in-process dbt-duckdb run holds
    read-write (which has it attached already under the alias) is used as it is: no second attach."""
    raw = _raw_database(tmp_path)
    path = tmp_path / "prod.duckdb"
    duckdb.connect(str(path)).close()
    holder = duckdb.connect(str(path)) if held else None
    try:
        if holder is not None:
            holder.execute(f"attach '{raw}' as raw (read_only)")
        warehouse = DuckDBWarehouse(path, attach=[{"path": str(raw), "alias": "raw"}])
        assert warehouse._execute("select count(*) from raw.main.orders") == [(3,)]
        warehouse.close()
    finally:
        if holder is not None:
            holder.close()


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
        # Full types: precision and scale (INFORMATION_SCHEMA's DATA_TYPE alone says NUMBER).
        assert stats[relations[0]].column_types() == {"id": "NUMBER(38,0)", "amount": "NUMBER(10,2)"}
        assert stats[relations[1]].column_types() == {"id": "NUMBER(38,0)", "amount": "NUMBER(10,2)"}
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


def test_large_relation_differing_key_found_through_buckets(tmp_path: Path) -> None:
    from parity import synthetic as syn
    from parity.artifacts import RunArtifacts, parse_manifest, parse_run_results
    from parity.compare import JobInputs, compare_job
    from parity.model import RunRef, ValueStatus
    from parity.settings import ParitySettings, ValueSettings

    rows = "select range as id, range % 97 as grp, 'n' || range as label from range(120000)"
    _duckdb(tmp_path / "prod.duckdb", ["create schema marts", f"create table marts.big as {rows}"])
    _duckdb(
        tmp_path / "parity.duckdb",
        ["create schema marts", f"create table marts.big as {rows}", "update marts.big set grp = -1 where id = 77777"],
    )

    def side(database: str) -> RunArtifacts:
        manifest = parse_manifest(syn.manifest([syn.node("model.p.big", database=database)]))
        return RunArtifacts(
            label=database,
            manifest=manifest,
            run_results=parse_run_results(syn.run_results({"model.p.big": "success"})),
        )

    inputs = JobInputs(
        1, side("prod"), RunRef(system="files", run_id="a"), side("parity"), RunRef(system="files", run_id="b")
    )
    settings = ParitySettings(values=ValueSettings(keys={"big": ["id"]}))
    with DuckDBWarehouse(tmp_path / "prod.duckdb") as base, DuckDBWarehouse(tmp_path / "parity.duckdb") as cand:
        job = compare_job(inputs, settings, base, cand)
    [row] = job.value_checks
    assert (row.status, row.differing_columns) == (ValueStatus.DIFFERENT, ["grp"])
    [sample] = row.samples
    assert (sample.key, sample.baseline, sample.candidate) == ({"id": "77777"}, {"grp": str(77777 % 97)}, {"grp": "-1"})
    assert row.note is not None and "buckets" in row.note
    # Column fingerprints, bucket fingerprints, key hashes in the differing bucket, sampled rows.
    assert job.drill_down_queries == {"baseline": 4, "candidate": 4}


def test_snowflake_value_statements_run_where_fakesnow_supports_them() -> None:
    """fakesnow 0.12 has no HASH_AGG: describe, counts and the key-row fetch run through the real connector."""
    from dbt2prefect.fingerprint_sql import CompareColumn

    with fakesnow.patch():
        import snowflake.connector

        cur = snowflake.connector.connect(database="PROD", schema="MARTS").cursor()
        cur.execute("create table orders (id int, amount float, note varchar)")
        cur.execute("insert into orders values (1, 1.5, 'a'), (2, 2.25, null), (null, 3.0, 'c')")
        warehouse = warehouse_from_profile_output(
            {"type": "snowflake", "account": "wg", "user": "u", "password": SECRET}
        )
        orders = Relation("prod", "marts", "orders")
        stats = warehouse.relation_stats([orders])[orders]
        assert (stats.row_count, stats.columns) == (
            3,
            (("ID", "NUMBER(38,0)"), ("AMOUNT", "FLOAT"), ("NOTE", "TEXT(16777216)")),
        )
        cur.execute("select hash(id) from orders where id = 2 or id is null order by id nulls last")
        hashes = [int(h) for (h,) in cur.fetchall()]
        found = warehouse.rows_for_keys(stats, [CompareColumn("ID")], [CompareColumn("NOTE")], hashes, 10)
        assert sorted((row[1:] for row in found), key=str) == [(2, None), (None, "c")]
        assert warehouse.queries_issued == 2
        warehouse.close()


def test_snowflake_fingerprint_sql_shape() -> None:
    """HASH_AGG is not in fakesnow: the statements' shape is checked instead."""
    from dbt2prefect.fingerprint_sql import CompareColumn, FingerprintSpec, SnowflakeDialect

    dialect = SnowflakeDialect()
    spec = FingerprintSpec.of([CompareColumn("NOTE"), CompareColumn("AMOUNT", 6), CompareColumn("ID")])
    table = '"PROD"."MARTS"."ORDERS"'
    assert dialect.measure_part(3, table, spec) == (
        f'select 3 as idx, count(*) as n, to_varchar(hash_agg(round("AMOUNT", 6), "ID", "NOTE")) as fp from {table}'
    )
    assert dialect.measure_part(0, table, None) == f"select 0 as idx, count(*) as n, null as fp from {table}"
    assert dialect.column_fingerprints(table, spec) == (
        'select to_varchar(hash_agg(round("AMOUNT", 6))) as c0, to_varchar(hash_agg("ID")) as c1, '
        f'to_varchar(hash_agg("NOTE")) as c2 from {table}'
    )
    key = [CompareColumn("ID")]
    assert dialect.bucket_fingerprints(table, spec, key, 64) == (
        'select mod(hash("ID"), 64) as b, to_varchar(hash_agg(round("AMOUNT", 6), "ID", "NOTE")) as fp '
        f"from {table} group by 1"
    )
    assert dialect.key_row_hashes(table, spec, key, 64, [5, 9], 100) == (
        'select hash("ID") as kh, to_varchar(hash_agg(round("AMOUNT", 6), "ID", "NOTE")) as fp '
        f'from {table} where mod(hash("ID"), 64) in (5, 9) group by 1 limit 100'
    )
    # Column order never matters: the spec sorts by name.
    assert FingerprintSpec.of(list(reversed(spec.columns))) == spec


def _node(database: str, relation_name: str) -> Any:
    from parity import synthetic as syn
    from parity.artifacts import parse_manifest

    raw = {**syn.node("model.p.orders", database=database, schema="marts"), "relation_name": relation_name}
    node = parse_manifest(syn.manifest([raw])).get("model.p.orders")
    assert node is not None
    return node


def test_snowflake_schema_compares_full_types_and_resolves_quoted_names() -> None:
    """A scale-only change with equal values and a VARCHAR length change are schema differences; a database
    that dbt quotes keeps its mixed case, unquoted names resolve to upper case."""
    from parity.rowcounts import RelationPair, relation_of
    from parity.schema import compare_schemas
    from parity.settings import ParitySettings

    with fakesnow.patch():
        import snowflake.connector

        cur = snowflake.connector.connect().cursor()
        cur.execute("create database PROD")
        cur.execute("create schema PROD.MARTS")
        cur.execute("create table PROD.MARTS.ORDERS (id int, amount number(10,2), note varchar(16))")
        cur.execute('create database "MyParity"')
        cur.execute('create schema "MyParity".MARTS')
        cur.execute('create table "MyParity".MARTS.ORDERS (id int, amount number(10,3), note varchar(32))')
        for database in ("PROD", '"MyParity"'):
            cur.execute(f"insert into {database}.MARTS.ORDERS values (1, 1.5, 'a'), (2, 2.25, 'b')")
        warehouse = warehouse_from_profile_output({"type": "snowflake", "account": "wg", "user": "u"})
        base_node = _node("prod", "prod.marts.orders")
        cand_node = _node("MyParity", '"MyParity".marts.orders')
        base, cand = relation_of(base_node), relation_of(cand_node)
        assert base is not None and cand is not None and cand.quoted == (True, False, False)
        stats = warehouse.relation_stats([base, cand])
        assert (stats[base].row_count, stats[cand].row_count) == (2, 2)
        assert stats[cand].located == ("MARTS", "ORDERS")
        pair = RelationPair("model.p.orders", base, cand, cand_node)
        rows, findings, compared = compare_schemas([pair], None, None, stats, stats, ParitySettings())
        warehouse.close()
    assert compared == 1
    assert [(r.column, r.baseline_type, r.candidate_type, r.status) for r in rows] == [
        ("AMOUNT", "NUMBER(10,2)", "NUMBER(10,3)", "type_changed"),
        ("NOTE", "TEXT(16)", "TEXT(32)", "type_changed"),
    ]
    assert {f.reason for f in findings} == {"column_type_changed"}


def test_columns_differing_only_by_case_stay_apart_where_the_warehouse_keeps_case() -> None:
    """On Snowflake a quoted "Amount" and AMOUNT are two columns; DuckDB resolves names case-insensitively."""
    from parity.schema import diff_columns

    snowflake = RelationStats(Relation("P", "M", "T"), True, columns=(("Amount", "NUMBER(10,2)"),), case_sensitive=True)
    renamed = RelationStats(Relation("P", "M", "T"), True, columns=(("AMOUNT", "NUMBER(10,2)"),), case_sensitive=True)
    rows = diff_columns("model.p.t", snowflake.resolved_columns(), renamed.resolved_columns(), "information_schema")
    assert [(r.column, r.status) for r in rows] == [("AMOUNT", "added"), ("Amount", "removed")]
    duck = [RelationStats(Relation("p", "m", "t"), True, columns=((name, "INTEGER"),)) for name in ("Amount", "AMOUNT")]
    assert diff_columns("model.p.t", duck[0].resolved_columns(), duck[1].resolved_columns(), "information_schema") == []
