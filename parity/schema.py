"""Columns and full types per relation: information_schema as the warehouse resolves names, else catalog.json."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dbt2prefect.warehouse import Relation, RelationStats
from parity.artifacts import Catalog
from parity.model import Check, Finding, Reason, SchemaRow, Severity
from parity.rowcounts import RelationPair
from parity.settings import ParitySettings


def _norm(data_type: str) -> str:
    return " ".join(data_type.upper().split())


def diff_columns(unique_id: str, baseline: dict[str, str], candidate: dict[str, str], source: str) -> list[SchemaRow]:
    """Columns added, removed or retyped between two column maps (name -> type)."""
    rows: list[SchemaRow] = []
    for column in sorted(set(baseline) | set(candidate)):
        b, c = baseline.get(column), candidate.get(column)
        if b is None:
            status = "added"
        elif c is None:
            status = "removed"
        elif _norm(b) != _norm(c):
            status = "type_changed"
        else:
            continue
        rows.append(
            SchemaRow(
                unique_id=unique_id,
                column=column,
                baseline_type=b,
                candidate_type=c,
                status=status,
                source=source,
            )
        )
    return rows


_REASONS = {"added": Reason.COLUMN_ADDED, "removed": Reason.COLUMN_REMOVED, "type_changed": Reason.COLUMN_TYPE_CHANGED}


def compare_schemas(
    pairs: Sequence[RelationPair],
    baseline_catalog: Catalog | None,
    candidate_catalog: Catalog | None,
    baseline_described: Mapping[Relation, RelationStats] | None,
    candidate_described: Mapping[Relation, RelationStats] | None,
    settings: ParitySettings,
) -> tuple[list[SchemaRow], list[Finding], int]:
    """Schema differences of every pair; returns rows, findings and the number of relations compared.

    Columns come from the warehouse's `describe` (already fetched for row counts and fingerprints: no extra
    query) with full types (length, precision, scale) and names as the warehouse resolves them (case kept on
    Snowflake, where a quoted "Amount" and AMOUNT are two columns); from catalog.json only where a side was not
    described (no warehouse connection).
    """
    rows: list[SchemaRow] = []
    compared = 0
    for pair in pairs:
        base_stats = baseline_described.get(pair.baseline) if baseline_described is not None else None
        cand_stats = candidate_described.get(pair.candidate) if candidate_described is not None else None
        if base_stats is not None and cand_stats is not None:
            if not base_stats.exists or not cand_stats.exists:
                continue  # a missing relation is already a row-count finding
            rows += diff_columns(
                pair.unique_id, base_stats.resolved_columns(), cand_stats.resolved_columns(), "information_schema"
            )
            compared += 1
            continue
        base_cols = baseline_catalog.columns(pair.unique_id) if baseline_catalog else None
        cand_cols = candidate_catalog.columns(pair.unique_id) if candidate_catalog else None
        if base_cols is not None and cand_cols is not None:
            rows += diff_columns(pair.unique_id, base_cols, cand_cols, "catalog")
            compared += 1
    findings = []
    for row in rows:
        reason = _REASONS[row.status]
        severity = Severity.EXPLAINED if settings.is_accepted(reason.value, row.unique_id) else Severity.ERROR
        findings.append(
            Finding(
                check=Check.SCHEMA,
                reason=reason.value,
                severity=severity,
                subject=row.unique_id,
                message=f"{row.unique_id}.{row.column}: {row.baseline_type or '-'} -> {row.candidate_type or '-'}",
            )
        )
    return rows, findings, compared
