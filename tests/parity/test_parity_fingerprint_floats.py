"""The DuckDB fingerprint's float rounding by scaling, through plan_values and the batched pass on real DuckDB files:
row and column order, noise below the precision, NULLs, values too large to scale, and column types that differ
between the sides."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from dbt2prefect.fingerprint_sql import CompareColumn, DuckDBDialect
from dbt2prefect.warehouse import DuckDBWarehouse
from parity import synthetic as syn
from parity.artifacts import RunArtifacts, parse_manifest, parse_run_results
from parity.rowcounts import relation_pairs
from parity.settings import ParitySettings
from parity.values import fingerprint_specs, plan_values

UID = "model.synthetic.orders"


def _side(database: str) -> RunArtifacts:
    nodes = [syn.node(UID, database=database, schema="marts")]
    return RunArtifacts(
        label=database,
        manifest=parse_manifest(syn.manifest(nodes)),
        run_results=parse_run_results(syn.run_results({UID: "success"})),
    )


def _fingerprints(tmp_path: Path, baseline: list[str], candidate: list[str]) -> tuple[str | None, str | None]:
    """Both sides' fingerprints of marts.orders, each built by its own statements."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = tmp_path / "prod.duckdb", tmp_path / "parity.duckdb"
    for path, statements in zip(paths, (baseline, candidate), strict=True):
        with duckdb.connect(str(path)) as conn:
            conn.execute("create schema marts")
            for sql in statements:
                conn.execute(sql)
    base_art, cand_art = _side("prod"), _side("parity")
    pairs = relation_pairs(base_art, cand_art)
    with DuckDBWarehouse(paths[0]) as base, DuckDBWarehouse(paths[1]) as cand:
        base_desc = base.describe([p.baseline for p in pairs])
        cand_desc = cand.describe([p.candidate for p in pairs])
        plans = plan_values(pairs, base_desc, cand_desc, ParitySettings(), same_engine=True, dialect=base.dialect)
        base_specs, cand_specs = fingerprint_specs(plans)
        base_stats = base.measure(base_desc, base_specs)
        cand_stats = cand.measure(cand_desc, cand_specs)
    [pair] = pairs
    return base_stats[pair.baseline].fingerprint, cand_stats[pair.candidate].fingerprint


ROWS = "create table marts.orders as select * from (values {values}) as v(id, amount, note)"


def test_row_and_column_order_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    baseline = ROWS.format(values="(1, 0.1::double, 'a'), (2, 2.675::double, null), (3, -1e-7::double, '')")
    candidate = (
        "create table marts.orders as select note, amount, id from (values (3, -1e-7::double, ''), "
        "(1, 0.1::double, 'a'), (2, 2.675::double, null)) as v(id, amount, note)"
    )
    base, cand = _fingerprints(tmp_path, [baseline], [candidate])
    assert base is not None and base == cand


@pytest.mark.parametrize(
    ("baseline", "candidate", "equal"),
    [
        ("1.2345674", "1.2345674 + 1e-12", True),  # noise far below 6 decimals
        ("0.1 + 0.2", "0.3", True),  # the classic float sum
        ("-0.0000001", "0.0", True),  # rounds to -0.0, which hashes as 0.0
        ("1.234567", "1.234568", False),  # the 6th decimal changed
        ("1.2345674", "1.2345676", False),  # across a half-way point
        ("null", "0.0", False),
        ("1e305", "2e305", False),  # too large to scale: compared as they are
        ("'inf'", "1e308", False),
        ("'nan'", "'nan'", True),
        ("123456789.123456", "123456789.123457", False),
    ],
)
def test_double_columns_compare_at_six_decimals(tmp_path: Path, baseline: str, candidate: str, equal: bool) -> None:
    table = "create table marts.orders as select 1 as id, ({})::double as amount"
    base, cand = _fingerprints(tmp_path, [table.format(baseline)], [table.format(candidate)])
    assert (base == cand) is equal


def test_null_and_empty_text_stay_apart(tmp_path: Path) -> None:
    table = "create table marts.orders as select 1 as id, {}::varchar as note, 1.5::double as amount"
    base, cand = _fingerprints(tmp_path, [table.format("null")], [table.format("''")])
    assert base != cand


def test_same_value_as_double_on_one_side_and_decimal_or_real_on_the_other_still_differs(tmp_path: Path) -> None:
    # Only DOUBLE is rounded by scaling; a type change keeps its hash as before (DECIMAL and REAL hash their own
    # representation), so the verdict does not depend on the rounding form.
    double = "create table marts.orders as select 1 as id, 1.5::double as amount"
    for other in ("decimal(18, 2)", "real"):
        base, cand = _fingerprints(
            tmp_path / other.split("(")[0],
            [double],
            [f"create table marts.orders as select 1 as id, 1.5::{other} as amount"],
        )
        assert base != cand, other


def test_only_double_is_rounded_by_scaling() -> None:
    dialect = DuckDBDialect()
    assert dialect.hashed(CompareColumn("amount", 6, data_type="DOUBLE")) == (
        'case when abs("amount") < 1e294 then round("amount" * 1e6) / 1e6 else "amount" end'
    )
    assert dialect.hashed(CompareColumn("amount", 2, data_type="DECIMAL(18,4)")) == 'round("amount", 2)'
    assert dialect.hashed(CompareColumn("amount", 6, data_type="FLOAT")) == 'round("amount", 6)'  # 4 bytes in DuckDB
    assert dialect.hashed(CompareColumn("amount", 6)) == 'round("amount", 6)'
    assert dialect.hashed(CompareColumn("amount", None, data_type="DOUBLE")) == '"amount"'
    # What a reader sees (the largest value of a differing numeric column) keeps round(x, d).
    assert dialect.value(CompareColumn("amount", 6, data_type="DOUBLE")) == 'round("amount", 6)'
