"""A whole job compared over synthetic artifacts and real DuckDB files; report JSON, frames, Markdown, HTML, store."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from dbt2prefect.warehouse import DuckDBWarehouse
from parity import synthetic as syn
from parity.artifacts import RunArtifacts, parse_catalog, parse_manifest, parse_run_results
from parity.compare import JobInputs, compare_job
from parity.model import ParityReport, RowCountStatus, RunRef, Verdict
from parity.nodes import SelectionContext
from parity.render import report_html, report_markdown
from parity.settings import ParitySettings, RowCountSettings, Tolerance
from parity.store import load_latest_report, load_latest_verdicts, write_report

STG, FCT, INC = "model.p.stg", "model.p.fct", "model.p.inc_events"


def _db(path: Path, fct_rows: int, inc_rows: int, amount_type: str = "DOUBLE") -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute("create schema marts")
        conn.execute("create table marts.stg as select range as id from range(50)")
        conn.execute(
            f"create table marts.fct as select range as id, 1.0::{amount_type} as amount from range({fct_rows})"
        )
        conn.execute(f"create table marts.inc_events as select range as id from range({inc_rows})")
    return path


def _side(label: str, database: str, catalog_type: str = "DOUBLE") -> RunArtifacts:
    nodes = [
        syn.node(STG, database=database),
        syn.node(FCT, database=database, depends_on=[STG]),
        syn.node(INC, database=database, materialized="incremental", tags=["incremental"]),
    ]
    statuses = {STG: "success", FCT: "success", INC: "success"}
    return RunArtifacts(
        label=label,
        manifest=parse_manifest(syn.manifest(nodes)),
        run_results=parse_run_results(syn.run_results(statuses, times={STG: 1.0, FCT: 2.0, INC: 1.0})),
        catalog=parse_catalog(syn.catalog({FCT: {"id": "BIGINT", "amount": catalog_type}})),
    )


def _job(tmp_path: Path, fct_rows: int, settings: ParitySettings, catalog_type: str = "DOUBLE"):  # type: ignore[no-untyped-def]
    base_wh = DuckDBWarehouse(_db(tmp_path / "prod.duckdb", 200, 1000))
    cand_wh = DuckDBWarehouse(_db(tmp_path / "parity.duckdb", fct_rows, 1003, catalog_type))
    inputs = JobInputs(
        job_id=101,
        job_name="daily",
        baseline=_side("baseline", "prod"),
        baseline_ref=RunRef(system="dbt_cloud", run_id="9001", step=4, target="prod"),
        candidate=_side("candidate", "parity", catalog_type),
        candidate_ref=RunRef(system="prefect", run_id="flow-run-1", target="parity"),
        selection=SelectionContext(selected=frozenset({STG, FCT, INC})),
    )
    try:
        return compare_job(inputs, settings, base_wh, cand_wh)
    finally:
        base_wh.close()
        cand_wh.close()


TOLERANT = ParitySettings(row_counts=RowCountSettings(tags={"incremental": Tolerance(rel=0.01)}))


def test_equal_counts_and_tolerated_incremental_drift_pass(tmp_path: Path) -> None:
    job = _job(tmp_path, 200, TOLERANT)
    assert job.verdict is Verdict.PASS, job.errors()
    statuses = {r.unique_id: (r.status, r.tolerance_source) for r in job.row_counts}
    assert statuses[FCT] == (RowCountStatus.EQUAL, "default")
    assert statuses[INC] == (RowCountStatus.WITHIN_TOLERANCE, "tag:incremental")
    # Per side: one describe (existence, kind, columns) and one batched count(*) with fingerprints.
    assert job.queries_issued == {"baseline": 2, "candidate": 2}
    assert job.schema_relations_compared == 3


def test_dropped_rows_and_retyped_column_fail_with_reasons(tmp_path: Path) -> None:
    job = _job(tmp_path, 150, ParitySettings(), catalog_type="INTEGER")
    assert job.verdict is Verdict.FAIL
    reasons = {(f.reason, f.subject) for f in job.errors()}
    assert ("row_count_differs", FCT) in reasons
    assert ("row_count_differs", INC) in reasons  # no tolerance configured
    assert ("column_type_changed", FCT) in reasons
    fct = next(r for r in job.row_counts if r.unique_id == FCT)
    assert (fct.baseline_rows, fct.candidate_rows, fct.delta) == (200, 150, -50)


@pytest.fixture
def report(tmp_path: Path) -> ParityReport:
    failing = _job(tmp_path / "a", 150, TOLERANT) if (tmp_path / "a").mkdir() is None else None
    passing = _job(tmp_path / "b", 200, TOLERANT) if (tmp_path / "b").mkdir() is None else None
    assert failing is not None and passing is not None
    passing = passing.model_copy(update={"job_id": 102, "job_name": "hourly"})
    return ParityReport.from_jobs("dbt_williamgrant", [failing, passing])


def test_report_json_round_trips_and_verdicts_aggregate(report: ParityReport) -> None:
    assert report.verdict is Verdict.FAIL
    again = ParityReport.model_validate_json(report.model_dump_json())
    assert again == report
    assert ParityReport.from_jobs("t", []).verdict is Verdict.FAIL


def test_frames_have_one_frame_per_check(report: ParityReport) -> None:
    frames = report.to_frames()
    assert set(frames) == {
        "jobs",
        "node_counts",
        "node_sets",
        "statuses",
        "row_counts",
        "values",
        "value_columns",
        "value_samples",
        "schema",
        "timings",
        "findings",
    }
    jobs = frames["jobs"].set_index("job_id")
    assert jobs.loc[101, "verdict"] == "FAIL" and jobs.loc[102, "verdict"] == "PASS"
    rows = frames["row_counts"]
    assert rows.loc[(rows.job_id == 101) & (rows.unique_id == FCT), "delta"].item() == -50
    assert list(frames["statuses"].columns)[:2] == ["job_id", "unique_id"]  # empty frame keeps its columns
    values = frames["values"].set_index(["job_id", "unique_id"])
    assert values.loc[(102, FCT), "status"] == "equal" and jobs.loc[102, "relations_value_checked"] == 3
    assert values.loc[(101, FCT), "reason"] == "values_skipped_row_counts_differ"
    assert list(frames["value_samples"].columns) == [
        "job_id",
        "unique_id",
        "kind",
        "key",
        "column",
        "baseline",
        "candidate",
    ]


def test_markdown_and_offline_html(report: ParityReport) -> None:
    markdown = report_markdown(report)
    assert "# Parity dbt_williamgrant: **FAIL**" in markdown
    assert "row_count_differs" in markdown
    html = report_html(report)
    assert "<svg" in html and "Row-count deltas" in html and "Checks per job" in html
    assert "Relations value-checked per job" in html
    assert not re.search(r"<script|<link|src=|https?://(?!www\.w3\.org/2000/svg)", html)
    assert_html_shows_the_markdown(markdown, html)


def assert_html_shows_the_markdown(markdown: str, html: str) -> None:
    """Every heading, sentence and table cell of the Markdown is in the HTML page's text too."""
    from html import unescape

    page = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    for line in markdown.splitlines():
        text = line.strip().lstrip("#").strip().replace("**", "")
        if not text or set(text) <= set("|-"):
            continue
        cells = (
            [c.strip().replace("\\|", "|") for c in text.strip("|").split(" | ")] if text.startswith("|") else [text]
        )
        for cell in cells:
            assert " ".join(cell.split()) in page, cell


def test_store_writes_files_and_keeps_latest_verdict_per_job(tmp_path: Path, report: ParityReport) -> None:
    root = tmp_path / "reports"
    folder = Path(write_report(report, root))
    assert {p.name for p in folder.iterdir()} == {"report.json", "report.md", "report.html"}
    only_102 = ParityReport.from_jobs(
        "dbt_williamgrant", [report.job(102).model_copy(update={"verdict": Verdict.FAIL})]
    )
    write_report(only_102, root)
    verdicts = load_latest_verdicts(root)
    assert verdicts[101][0] is Verdict.FAIL and verdicts[101][1] == report.created_at
    assert verdicts[102][0] is Verdict.FAIL and verdicts[102][1] == only_102.created_at
    latest = load_latest_report(root)
    assert latest is not None and [j.job_id for j in latest.jobs] == [102]
    assert load_latest_verdicts(tmp_path / "nothing") == {}


def test_report_says_what_to_do_shows_every_row_count_and_explains_the_time_ratio(report: ParityReport) -> None:
    markdown = report_markdown(report)
    failing = report.job(101)
    [differs] = [f for f in failing.errors() if f.reason == "row_count_differs"]
    line = f'[parity] accepted = ["row_count_differs:{differs.subject}"]'
    assert "| what to do |" in markdown and line in markdown and line in report_html(report).replace("&quot;", '"')
    # Equal counts are shown with their numbers too, not only counted.
    equal = next(r for r in failing.row_counts if r.status is RowCountStatus.EQUAL)
    assert f"| {equal.unique_id} | {equal.baseline_rows} | {equal.candidate_rows} | 0 | equal |" in markdown
    assert "ratio is candidate / baseline of the compared dbt step's elapsed time" in markdown
    assert "[parity.timings] gate = true" in markdown


def test_a_finding_about_the_wrong_data_offers_no_acceptance() -> None:
    from parity.model import Check, Finding, Severity
    from parity.render import what_to_do

    stale = Finding(
        check=Check.ARTIFACTS,
        reason="candidate_data_stale",
        severity=Severity.ERROR,
        subject="run-2",
        message="rewritten",
        explanation="rerun parity",
    )
    assert what_to_do(stale) == "rerun parity"
    with pytest.raises(ValueError, match="cannot be accepted"):
        ParitySettings(accepted=("baseline_moved:*",))
