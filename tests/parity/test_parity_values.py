"""Value parity on two DuckDB databases built by real dbt runs of the tenant project (`prod` vs `parity`).

Each test changes a copy of the candidate database the way a changed model, a reordered select or a rerun
would, then compares it with the baseline through `compare_job`, as the parity flow does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from parity.compare import JobInputs, compare_job
from parity.model import JobParity, ParityReport, RunRef, ValueRow, ValueStatus, Verdict
from parity.render import report_html, report_markdown
from parity.settings import ParitySettings, ValueSettings, load_parity_settings

REPO = Path(__file__).resolve().parents[2]
BuiltTenant = Any  # tests/parity/conftest.py: the session's two dbt-built databases

FX = "model.dbt_williamgrant.fct_fx_rates"
REVENUE = "model.dbt_williamgrant.rpt_revenue_by_currency"
FX_VIEW = "model.dbt_williamgrant.stg_finance__fx_rates"
TENANT_SETTINGS = load_parity_settings(REPO / "tenants" / "dbt_williamgrant.parity.toml")
FX_TABLE = "parity.marts_finance.fct_fx_rates"
REVENUE_TABLE = "parity.marts_finance.rpt_revenue_by_currency"


def _compare(
    built: BuiltTenant, candidate: Path, settings: ParitySettings = TENANT_SETTINGS, baseline: Path | None = None
) -> JobParity:
    inputs = JobInputs(
        job_id=1,
        baseline=built.artifacts["prod"],
        baseline_ref=RunRef(system="files", run_id="prod", target="prod"),
        candidate=built.artifacts["parity"],
        candidate_ref=RunRef(system="files", run_id="parity", target="parity"),
    )
    base_wh, cand_wh = built.warehouse_of(baseline or built.database("prod")), built.warehouse_of(candidate)
    try:
        return compare_job(inputs, settings, base_wh, cand_wh)
    finally:
        base_wh.close()
        cand_wh.close()


def _row(job: JobParity, unique_id: str) -> ValueRow:
    return next(row for row in job.value_checks if row.unique_id == unique_id)


def _first_fx_key(built: BuiltTenant) -> str:
    with duckdb.connect(str(built.database("parity")), read_only=True) as conn:
        row = conn.execute(f"select min(fx_rate_key) from {FX_TABLE}").fetchone()
    assert row is not None
    return str(row[0])


def test_identical_runs_pass_with_every_relation_value_checked(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    job = _compare(built_tenant, built_tenant.candidate_copy(tmp_path))
    assert job.verdict is Verdict.PASS, job.errors()
    pairs = {r.unique_id for r in job.row_counts}
    assert {r.unique_id for r in job.value_checks} == pairs and len(pairs) == 8
    assert all(r.status is ValueStatus.EQUAL and r.baseline_fingerprint for r in job.value_checks)
    # Row counts, schema and fingerprints of all 8 relations: two queries per database, nothing drilled into.
    assert job.queries_issued == {"baseline": 2, "candidate": 2}
    assert job.drill_down_queries == {"baseline": 0, "candidate": 0}
    assert _row(job, FX_VIEW).materialized == "view"


def test_timestamp_column_fails_unless_excluded(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    later = f"update {REVENUE_TABLE} set revalued_at = revalued_at + interval 1 hour"
    candidate = built_tenant.candidate_copy(tmp_path, later)
    strict = _compare(built_tenant, candidate, ParitySettings())
    [error] = strict.errors()
    assert (error.reason, error.subject) == ("values_differ", REVENUE)
    assert _row(strict, REVENUE).differing_columns == ["revalued_at"]
    tenant = _compare(built_tenant, candidate)
    assert tenant.verdict is Verdict.PASS, tenant.errors()
    row = _row(tenant, REVENUE)
    assert row.status is ValueStatus.EQUAL
    assert row.excluded_columns == ["revalued_at (model:rpt_revenue_by_currency)"]
    assert ("columns_excluded", REVENUE) in {(f.reason, f.subject) for f in tenant.findings}


def test_changed_value_names_the_column_and_the_key(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    key = _first_fx_key(built_tenant)
    wrong_rate = f"update {FX_TABLE} set units_per_gbp = units_per_gbp * 1.01 where fx_rate_key = '{key}'"
    job = _compare(built_tenant, built_tenant.candidate_copy(tmp_path, wrong_rate))
    assert job.verdict is Verdict.FAIL
    [error] = job.errors()
    assert error.reason == "values_differ" and error.subject == FX
    assert "units_per_gbp" in error.message and key in error.message
    row = _row(job, FX)
    assert row.differing_columns == ["units_per_gbp"]
    assert (row.key, row.key_source) == (["fx_rate_key"], "test:unique")
    [sample] = row.samples
    assert sample.kind == "changed" and sample.key == {"fx_rate_key": key}
    base, cand = float(sample.baseline["units_per_gbp"] or 0), float(sample.candidate["units_per_gbp"] or 0)
    assert cand == pytest.approx(base * 1.01, abs=1e-6)
    assert job.queries_issued == {"baseline": 2, "candidate": 2}
    # Column fingerprints, key hashes, sampled rows: three statements per side for a small relation.
    assert job.drill_down_queries == {"baseline": 3, "candidate": 3}
    report = ParityReport.from_jobs("dbt_williamgrant", [job])
    markdown, html = report_markdown(report), report_html(report)
    for text in ("Values (7 of 8 equal, 1 differ, 0 skipped)", "Value samples (differing keys)", f"fx_rate_key={key}"):
        assert text in markdown and text in html
    assert "Where values differ" in html and f"{FX} [units_per_gbp]" in html
    samples = report.to_frames()["value_samples"]
    assert samples[["unique_id", "column"]].values.tolist() == [[FX, "units_per_gbp"]]


def test_accepted_value_difference_is_explained(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    key = _first_fx_key(built_tenant)
    change = f"update {FX_TABLE} set currency_code = 'XXX' where fx_rate_key = '{key}'"
    settings = TENANT_SETTINGS.model_copy(update={"accepted": ("values_differ:*fct_fx_rates",)})
    job = _compare(built_tenant, built_tenant.candidate_copy(tmp_path, change), settings)
    assert job.verdict is Verdict.PASS
    [finding] = [f for f in job.findings if f.reason == "values_differ"]
    assert finding.severity.value == "explained" and "currency_code" in finding.message


def test_swapped_column_order_passes(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    with duckdb.connect(str(built_tenant.database("parity")), read_only=True) as conn:
        built = conn.execute(f"select * from {FX_TABLE} limit 0").description
    assert built is not None and len(built) > 2
    reversed_columns = [column[0] for column in reversed(built)]
    reorder = f"create or replace table {FX_TABLE} as select {', '.join(reversed_columns)} from {FX_TABLE}"
    candidate = built_tenant.candidate_copy(tmp_path, reorder)
    with duckdb.connect(str(candidate), read_only=True) as conn:
        swapped = conn.execute(f"select * from {FX_TABLE} limit 0").description
    assert swapped is not None and [column[0] for column in swapped] == reversed_columns
    job = _compare(built_tenant, candidate)
    assert job.verdict is Verdict.PASS, job.errors()
    assert _row(job, FX).status is ValueStatus.EQUAL


@pytest.mark.parametrize(("delta", "status"), [(4e-8, ValueStatus.EQUAL), (1e-3, ValueStatus.DIFFERENT)])
def test_float_compared_at_the_configured_precision(
    built_tenant: BuiltTenant, tmp_path: Path, delta: float, status: ValueStatus
) -> None:
    # A value far from a rounding boundary at 6 decimals on both sides, then the candidate moves by delta.
    set_gbp = "update {db}.marts_finance.rpt_revenue_by_currency set net_amount_gbp_at_latest_rate = {value} "
    set_gbp += "where currency_code = 'GBP'"
    baseline = built_tenant.baseline_copy(tmp_path / "b", set_gbp.format(db="prod", value=1234.5))
    candidate = built_tenant.candidate_copy(tmp_path / "c", set_gbp.format(db="parity", value=1234.5 + delta))
    job = _compare(built_tenant, candidate, baseline=baseline)
    row = _row(job, REVENUE)
    assert row.float_columns == ["net_amount_gbp_at_latest_rate"] and row.float_decimals == 6
    assert row.status is status
    if status is ValueStatus.DIFFERENT:
        assert row.differing_columns == ["net_amount_gbp_at_latest_rate"]
        [sample] = row.samples
        assert sample.key == {"currency_code": "GBP"}
        assert (sample.baseline, sample.candidate) == (
            {"net_amount_gbp_at_latest_rate": "1234.5"},
            {"net_amount_gbp_at_latest_rate": str(1234.5 + delta)},
        )
    else:
        assert job.verdict is Verdict.PASS, job.errors()
        assert any(f.reason == "float_precision" and f.subject == REVENUE for f in job.findings)


def test_view_is_fingerprinted_on_what_it_selects(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    changed_view = (
        "create or replace view parity.staging.stg_finance__fx_rates as "
        "select * replace (upper(rate_source) as rate_source) from prod_definition"
    )
    with duckdb.connect(str(built_tenant.database("parity")), read_only=True) as conn:
        [(definition,)] = conn.execute(
            "select sql from duckdb_views() where database_name = 'parity' and view_name = 'stg_finance__fx_rates'"
        ).fetchall()
    body = str(definition).split(" AS ", 1)[1].rstrip(";")
    job = _compare(
        built_tenant,
        built_tenant.candidate_copy(tmp_path, changed_view.replace("prod_definition", f"({body}) as v")),
    )
    row = _row(job, FX_VIEW)
    assert (row.materialized, row.status, row.differing_columns) == ("view", ValueStatus.DIFFERENT, ["rate_source"])
    assert ("values_differ", FX_VIEW) in {(f.reason, f.subject) for f in job.errors()}


def test_empty_tables_on_both_sides_are_equal(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    baseline = built_tenant.baseline_copy(tmp_path / "b", "delete from prod.marts_finance.fct_fx_rates")
    candidate = built_tenant.candidate_copy(tmp_path / "c", f"delete from {FX_TABLE}")
    job = _compare(built_tenant, candidate, baseline=baseline)
    fx = _row(job, FX)
    assert fx.status is ValueStatus.EQUAL and fx.baseline_fingerprint == fx.candidate_fingerprint == "0"
    assert next(r for r in job.row_counts if r.unique_id == FX).baseline_rows == 0
    assert job.verdict is Verdict.PASS, job.errors()


def test_empty_candidate_table_is_a_row_count_failure_not_a_value_one(
    built_tenant: BuiltTenant, tmp_path: Path
) -> None:
    job = _compare(built_tenant, built_tenant.candidate_copy(tmp_path, f"delete from {FX_TABLE}"))
    assert {(f.reason, f.subject) for f in job.errors()} == {("row_count_differs", FX)}
    row = _row(job, FX)
    assert (row.status, row.reason) == (ValueStatus.SKIPPED, "values_skipped_row_counts_differ")


def test_table_missing_on_one_side(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    job = _compare(built_tenant, built_tenant.candidate_copy(tmp_path, f"drop table {REVENUE_TABLE}"))
    assert {(f.reason, f.subject) for f in job.errors()} == {("relation_missing_in_candidate", REVENUE)}
    row = _row(job, REVENUE)
    assert (row.status, row.reason) == (ValueStatus.SKIPPED, "values_skipped_relation_missing")
    assert job.queries_issued == {"baseline": 2, "candidate": 2}


def test_null_keys_are_sampled_as_nulls(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    key = _first_fx_key(built_tenant)
    null_key = "update {db}.marts_finance.fct_fx_rates set fx_rate_key = null where fx_rate_key = '{key}'"
    # The same NULL key on both sides; the candidate also changes that row's rate.
    baseline = built_tenant.baseline_copy(tmp_path / "b", null_key.format(db="prod", key=key))
    candidate = built_tenant.candidate_copy(
        tmp_path / "c",
        null_key.format(db="parity", key=key),
        f"update {FX_TABLE} set units_per_gbp = 0 where fx_rate_key is null",
    )
    row = _row(_compare(built_tenant, candidate, baseline=baseline), FX)
    assert row.differing_columns == ["units_per_gbp"]
    [sample] = row.samples
    assert sample.kind == "changed" and sample.key == {"fx_rate_key": None}
    assert float(sample.candidate["units_per_gbp"] or 1) == 0.0
    assert float(sample.baseline["units_per_gbp"] or 0) > 0


def test_configured_key_and_disabled_values(built_tenant: BuiltTenant, tmp_path: Path) -> None:
    change = (
        "update {t} set units_per_gbp = 1 where currency_code = 'USD' and rate_date = (select max(rate_date) from {t})"
    )
    candidate = built_tenant.candidate_copy(tmp_path, change.format(t=FX_TABLE))
    keyed = TENANT_SETTINGS.model_copy(
        update={"values": ValueSettings(keys={"fct_fx_*": ["rate_date", "currency_code"]})}
    )
    row = _row(_compare(built_tenant, candidate, keyed), FX)
    assert (row.key, row.key_source) == (["rate_date", "currency_code"], "settings:fct_fx_*")
    [sample] = row.samples
    assert sample.key["currency_code"] == "USD" and sample.baseline.keys() == {"units_per_gbp"}
    off = TENANT_SETTINGS.model_copy(update={"values": ValueSettings(enabled=False)})
    job = _compare(built_tenant, candidate, off)
    assert job.verdict is Verdict.PASS and job.value_checks == []
    assert [f.reason for f in job.findings if f.check.value == "values"] == ["values_disabled"]


def test_bad_value_settings_name_the_setting(tmp_path: Path) -> None:
    from parity.errors import ParitySettingsError

    path = tmp_path / "t.parity.toml"
    path.write_text("[parity.values]\nfloat_decimals = -1\n[parity.values.keys]\nfct_orders = []\n", encoding="utf-8")
    with pytest.raises(ParitySettingsError) as raised:
        load_parity_settings(path)
    assert "parity.values.float_decimals" in str(raised.value) and "fct_orders lists no column" in str(raised.value)


def test_drill_down_per_column_shows_only_keys_that_differ_in_that_column(
    built_tenant: BuiltTenant, tmp_path: Path
) -> None:
    # Three keys differ in reporting_region only; two others in units_per_gbp only (by 0.5 and by 2).
    with duckdb.connect(str(built_tenant.database("parity")), read_only=True) as conn:
        keys = [str(k) for (k,) in conn.execute(f"select fx_rate_key from {FX_TABLE} order by 1 limit 5").fetchall()]
    region = (
        f"update {FX_TABLE} set reporting_region = 'UK' where fx_rate_key in ('{keys[0]}', '{keys[1]}', '{keys[2]}')"
    )
    rate = "update {t} set units_per_gbp = units_per_gbp + {d} where fx_rate_key = '{k}'"
    candidate = built_tenant.candidate_copy(
        tmp_path, region, rate.format(t=FX_TABLE, d=0.5, k=keys[3]), rate.format(t=FX_TABLE, d=2, k=keys[4])
    )
    row = _row(_compare(built_tenant, candidate), FX)
    assert row.differing_columns == ["reporting_region", "units_per_gbp"]
    by_column = {diff.column: diff for diff in row.column_diffs}
    assert by_column["reporting_region"].unequal_rows == 3 and by_column["reporting_region"].max_abs_diff is None
    assert by_column["units_per_gbp"].unequal_rows == 2 and by_column["units_per_gbp"].complete
    assert by_column["units_per_gbp"].max_abs_diff == pytest.approx(2.0)
    assert (row.rows_changed, row.rows_only_in_baseline, row.rows_only_in_candidate) == (5, 0, 0)
    sampled = {(s.column, s.key["fx_rate_key"]) for s in row.samples}
    assert sampled == {("reporting_region", k) for k in keys[:3]} | {("units_per_gbp", k) for k in keys[3:]}
    for sample in row.samples:  # a changed sample holds its own column, with two different values
        assert sample.kind == "changed" and set(sample.baseline) == set(sample.candidate) == {sample.column}
        assert sample.baseline != sample.candidate
    report = ParityReport.from_jobs("dbt_williamgrant", [_compare(built_tenant, candidate)])
    markdown = report_markdown(report)
    assert "| reporting_region | 3 |" in markdown.replace(f"| {FX} ", "")
    samples = report.to_frames()["value_samples"]
    assert (samples["baseline"] != samples["candidate"]).all() and len(samples) == 5
