"""pandas DataFrames of a parity report, one frame per check, every row tagged with its job id."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pandas as pd
from pydantic import BaseModel

from parity.model import (
    Finding,
    NodeCountRow,
    NodeSetRow,
    RowCountRow,
    SchemaRow,
    StatusRow,
    TimingRow,
    ValueRow,
    ValueStatus,
)

if TYPE_CHECKING:
    from parity.model import ParityReport

FRAME_NAMES = (
    "jobs", "node_counts", "node_sets", "statuses", "row_counts", "values", "value_columns", "value_samples",
    "schema", "timings", "findings",
)  # fmt: skip
COLUMN_DIFF_COLUMNS = ["job_id", "unique_id", "column", "unequal_rows", "complete", "max_abs_diff"]
SAMPLE_COLUMNS = ["job_id", "unique_id", "kind", "key", "column", "baseline", "candidate"]


def _frame(model: type[BaseModel], rows: Iterable[tuple[int, BaseModel]]) -> pd.DataFrame:
    columns = ["job_id", *model.model_fields]
    records = [{"job_id": job_id, **row.model_dump(mode="json")} for job_id, row in rows]
    return pd.DataFrame.from_records(records, columns=columns)


def _rows(report: ParityReport, attr: str) -> list[tuple[int, BaseModel]]:
    result: list[tuple[int, BaseModel]] = []
    for job in report.jobs:
        items: Sequence[BaseModel] = getattr(job, attr)
        result += [(job.job_id, item) for item in items]
    return result


def _value_columns(report: ParityReport) -> pd.DataFrame:
    """One row per differing column of a relation: unequal rows and the largest numeric difference."""
    records = [
        {"job_id": job.job_id, "unique_id": row.unique_id, **diff.model_dump()}
        for job in report.jobs
        for row in job.value_checks
        for diff in row.column_diffs
    ]
    return pd.DataFrame.from_records(records, columns=COLUMN_DIFF_COLUMNS)


def _value_samples(report: ParityReport) -> pd.DataFrame:
    """One row per sampled key and column: the differing value on each side."""
    records = [
        {
            "job_id": job.job_id,
            "unique_id": row.unique_id,
            "kind": sample.kind,
            "key": ", ".join(f"{k}={v}" for k, v in sample.key.items()),
            "column": column,
            "baseline": sample.baseline.get(column),
            "candidate": sample.candidate.get(column),
        }
        for job in report.jobs
        for row in job.value_checks
        for sample in row.samples
        for column in sorted(set(sample.baseline) | set(sample.candidate))
    ]
    return pd.DataFrame.from_records(records, columns=SAMPLE_COLUMNS)


def report_frames(report: ParityReport) -> dict[str, pd.DataFrame]:
    """DataFrames keyed by check name (see FRAME_NAMES); `values` has one row per value-checked relation
    (samples flattened into `value_samples`).

    Every frame has its columns even when empty, so notebook code can filter without checking.
    """
    jobs = pd.DataFrame.from_records(
        [
            {
                "job_id": job.job_id,
                "job_name": job.job_name,
                "verdict": job.verdict.value,
                "baseline_run": job.baseline.run_id,
                "candidate_run": job.candidate.run_id,
                "nodes_matched": job.nodes_matched,
                "node_set_differences": len(job.node_sets),
                "status_differences": len(job.statuses),
                "row_count_failures": sum(1 for r in job.row_counts if r.status.value in ("different", "missing_in_baseline", "missing_in_candidate")),
                "relations_value_checked": len(job.value_checks),
                "value_differences": sum(1 for r in job.value_checks if r.status is ValueStatus.DIFFERENT),
                "schema_differences": len(job.schema_diffs),
                "errors": len(job.errors()),
                "time_ratio": job.timing_summary.ratio if job.timing_summary else None,
            }
            for job in report.jobs
        ],
        columns=[
            "job_id", "job_name", "verdict", "baseline_run", "candidate_run", "nodes_matched",
            "node_set_differences", "status_differences", "row_count_failures", "relations_value_checked",
            "value_differences", "schema_differences",
            "errors", "time_ratio",
        ],
    )  # fmt: skip
    return {
        "jobs": jobs,
        "node_counts": _frame(NodeCountRow, _rows(report, "node_counts")),
        "node_sets": _frame(NodeSetRow, _rows(report, "node_sets")),
        "statuses": _frame(StatusRow, _rows(report, "statuses")),
        "row_counts": _frame(RowCountRow, _rows(report, "row_counts")),
        "values": _frame(ValueRow, _rows(report, "value_checks")).drop(columns=["samples", "column_diffs"]),
        "value_columns": _value_columns(report),
        "value_samples": _value_samples(report),
        "schema": _frame(SchemaRow, _rows(report, "schema_diffs")),
        "timings": _frame(TimingRow, _rows(report, "timings")),
        "findings": _frame(Finding, _rows(report, "findings")),
    }
