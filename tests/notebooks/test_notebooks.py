"""The analysts' notebooks run top to bottom on sandbox data (nbclient, the venv's python3 kernel); none is
committed with outputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from parity.model import (
    Check,
    Finding,
    JobParity,
    NodeSetRow,
    ParityReport,
    RowCountRow,
    RowCountStatus,
    RunRef,
    Severity,
    StatusRow,
    TimingRow,
    TimingSummary,
    ValueRow,
    ValueSample,
    ValueStatus,
    Verdict,
)
from parity.store import write_report
from sandbox.dbt_cloud.state import SEED_JOBS
from sandbox.stack import derive_tenant_file

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FX = "model.dbt_williamgrant.fct_fx_rates"
ORDERS = "model.dbt_williamgrant.fct_orders"
AUDIT = "model.dbt_williamgrant.audit_prod_run_log"


def _execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    # kernel_name python3: jupyter_client starts it with this interpreter (the venv), so the project is importable.
    NotebookClient(book, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return book


def _rows(job_id: int, fx_candidate: int) -> list[RowCountRow]:
    def row(uid: str, baseline: int, candidate: int) -> RowCountRow:
        delta = candidate - baseline
        status = RowCountStatus.EQUAL if delta == 0 else RowCountStatus.DIFFERENT
        name = uid.rsplit(".", 1)[-1]
        return RowCountRow(
            unique_id=uid, materialized="table", baseline_relation=f"prod.marts.{name}",
            candidate_relation=f"parity.marts.{name}", baseline_rows=baseline, candidate_rows=candidate, delta=delta,
            relative_delta=delta / baseline, tolerance_abs=0, tolerance_rel=0.0, tolerance_source="default",
            status=status,
        )  # fmt: skip

    return [row(FX, 2928, fx_candidate), row(ORDERS, 400, 400)]


def _report(location: Path, failing: bool = True) -> ParityReport:
    """Two jobs as the parity flow writes them: one passing with an explained prod-only model, one failing (or
    passing too); `location` is where the candidate runs' artifacts are kept."""

    def job(job_id: int, verdict: Verdict, fx_candidate: int) -> JobParity:
        findings = [
            Finding(check=Check.NODE_SETS, reason="target_dependent_config", severity=Severity.EXPLAINED,
                    subject=AUDIT, message="enabled only on prod", explanation="enabled: target.name == 'prod'"),
        ]  # fmt: skip
        if verdict is Verdict.FAIL:
            findings.append(
                Finding(check=Check.ROW_COUNTS, reason="row_count_differs", severity=Severity.ERROR, subject=FX,
                        message=f"2928 rows in the baseline, {fx_candidate} in the candidate"),
            )  # fmt: skip
        return JobParity(
            job_id=job_id, job_name=f"job {job_id}", verdict=verdict,
            baseline=RunRef(system="dbt_cloud", run_id=f"7040310450{job_id % 100}", step=4, command="build", target="prod"),
            candidate=RunRef(system="prefect", run_id=f"00000000-0000-0000-0000-0000000000{job_id % 100}",
                             command="build", target="parity", location=str(location)),
            node_sets=[NodeSetRow(unique_id=AUDIT, resource_type="model", difference="missing",
                                  compared="baseline_vs_run", reason="target_dependent_config",
                                  explanation="enabled: target.name == 'prod'")],
            statuses=[StatusRow(unique_id="test.dbt_williamgrant.not_null_fct_orders_order_id", resource_type="test",
                                baseline_status="pass", candidate_status="warn", reason="status_changed")],
            nodes_matched=40, row_counts=_rows(job_id, fx_candidate),
            timings=[TimingRow(unique_id=FX, baseline_seconds=0.4, candidate_seconds=0.6, ratio=1.5),
                     TimingRow(unique_id=ORDERS, baseline_seconds=0.9, candidate_seconds=0.7, ratio=0.78)],
            timing_summary=TimingSummary(baseline_seconds=1.3, candidate_seconds=1.3, ratio=1.0, nodes_compared=2),
            findings=findings,
            value_checks=[
                ValueRow(unique_id=ORDERS, materialized="table", status=ValueStatus.EQUAL, columns_compared=9),
                ValueRow(unique_id=FX, materialized="table", status=ValueStatus.DIFFERENT, reason="values_differ",
                         columns_compared=6, differing_columns=["units_per_gbp"], key=["fx_rate_key"],
                         samples=[ValueSample(kind="changed", key={"fx_rate_key": "k-usd-0101"},
                                              baseline={"units_per_gbp": "1.27"}, candidate={"units_per_gbp": "1.2827"})]),
            ] if verdict is Verdict.FAIL else [],
        )  # fmt: skip

    second = job(70403103936340, Verdict.FAIL, 2500) if failing else job(70403103936340, Verdict.PASS, 2928)
    return ParityReport.from_jobs("dbt_williamgrant", [job(70403103936332, Verdict.PASS, 2928), second])


def test_no_notebook_is_committed_with_outputs() -> None:
    books = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert {b.name for b in books} >= {"parity_review.ipynb", "job_inventory.ipynb"}
    for path in books:
        book = nbformat.read(path, as_version=4)
        dirty = [i for i, c in enumerate(book.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


@pytest.mark.e2e  # runs the notebook in a Jupyter kernel
def test_parity_review_runs_on_a_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the README's variable: the tags come from the manifest where the report says the candidate run is."""
    reports, run = tmp_path / "parity", tmp_path / "store" / "run"
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(
        json.dumps({"nodes": {FX: {"tags": ["finance", "hourly"]}, ORDERS: {"tags": ["daily"]}}})
    )
    write_report(_report(run), reports)
    monkeypatch.setenv("DBT2PREFECT_PARITY_DIR", str(reports))
    monkeypatch.delenv("DBT2PREFECT_MANIFEST", raising=False)
    monkeypatch.delenv("DBT2PREFECT_TENANT_FILE", raising=False)
    book = _execute("parity_review.ipynb", tmp_path)
    text = json.dumps([c.get("outputs", []) for c in book.cells])
    assert "FAIL" in text and "fct_fx_rates" in text and "tags in the manifest: daily, finance, hourly" in text
    assert f"tags from {run / 'manifest.json'}" in text
    assert "image/png" in text  # the row-count and timing charts rendered
    assert "no differences" not in text
    assert "2 relations value-checked: 1 equal, 1 different" in text and "1.2827" in text


@pytest.mark.e2e  # runs the notebook in a Jupyter kernel
def test_parity_review_on_a_pass_says_no_differences_and_refuses_tags_without_a_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "parity"
    write_report(_report(tmp_path / "gone", failing=False), reports)
    tenant = derive_tenant_file(tmp_path / "t.toml", overrides={"artifact_store_url": str(tmp_path / "empty-store")})
    monkeypatch.setenv("DBT2PREFECT_PARITY_DIR", str(reports))
    monkeypatch.setenv("DBT2PREFECT_TENANT_FILE", str(tenant))
    monkeypatch.delenv("DBT2PREFECT_MANIFEST", raising=False)
    book = _execute("parity_review.ipynb", tmp_path)
    outputs = [c.get("outputs", []) for c in book.cells]
    text = json.dumps(outputs)
    assert "no differences: all 4 relations have the same row count on both sides" in text
    row_chart = next(o for c, o in zip(book.cells, outputs, strict=True) if "Row-count deltas" in c.source)
    assert "image/png" not in json.dumps(row_chart)
    assert "no manifest.json for tags" in text and str(tmp_path / "gone" / "manifest.json") in text
    assert "set DBT2PREFECT_MANIFEST" in text and "no tags to filter by" in text


@pytest.mark.e2e  # runs the notebook in a Jupyter kernel
def test_job_inventory_runs_on_the_seed_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT2PREFECT_INVENTORY", str(SEED_JOBS))
    book = _execute("job_inventory.ipynb", tmp_path)
    text = json.dumps([c.get("outputs", []) for c in book.cells])
    assert "job-70403103936332" in text and "job_chaining" in text and "image/png" in text
    assert "runs in the week" in text
