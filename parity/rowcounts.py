"""Row counts of the relations both runs built, baseline database vs candidate database, with tolerances."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dbt2prefect.warehouse import Relation, RelationStats, Warehouse
from parity.artifacts import ManifestNode, RunArtifacts
from parity.model import Check, Finding, Reason, RowCountRow, RowCountStatus, Severity
from parity.settings import ParitySettings


@dataclass(frozen=True)
class RelationPair:
    """One node's relation on each side."""

    unique_id: str
    baseline: Relation
    candidate: Relation
    node: ManifestNode


def quoted_parts(relation_name: str | None) -> tuple[bool, bool, bool]:
    """Which of database, schema and identifier the manifest's `relation_name` quotes (dbt's quoting config).

    `"MyDb".marts.orders` -> (True, False, False); anything but three dotted parts -> all unquoted.
    """
    if not relation_name:
        return (False, False, False)
    flags: list[bool] = []
    index, text = 0, relation_name.strip()
    while index <= len(text):
        if text.startswith('"', index):
            end = index + 1
            while True:  # "" inside a quoted name is one quote
                end = text.find('"', end)
                if end < 0:
                    return (False, False, False)
                if text.startswith('""', end):
                    end += 2
                    continue
                break
            flags.append(True)
            index = end + 1
        else:
            end = text.find(".", index)
            flags.append(False)
            index = len(text) if end < 0 else end
        if index >= len(text):
            break
        if text[index] != ".":
            return (False, False, False)
        index += 1
    return (flags[0], flags[1], flags[2]) if len(flags) == 3 else (False, False, False)


def relation_of(node: ManifestNode) -> Relation | None:
    """The warehouse relation of a node, None when the manifest does not place it (ephemeral, tests)."""
    if not node.has_relation or not node.database or not node.schema_:
        return None
    return Relation(node.database, node.schema_, node.relation_identifier, quoted_parts(node.relation_name))


def relation_pairs(baseline: RunArtifacts, candidate: RunArtifacts) -> list[RelationPair]:
    """Relations of nodes executed in both runs (tables, views, incrementals, seeds, snapshots)."""
    executed = {r.unique_id for r in baseline.run_results.results} & {
        r.unique_id for r in candidate.run_results.results
    }
    pairs: list[RelationPair] = []
    for uid in sorted(executed):
        base_node, cand_node = baseline.manifest.get(uid), candidate.manifest.get(uid)
        if base_node is None or cand_node is None:
            continue
        base_rel, cand_rel = relation_of(base_node), relation_of(cand_node)
        if base_rel is not None and cand_rel is not None:
            pairs.append(RelationPair(uid, base_rel, cand_rel, cand_node))
    return pairs


def compare_row_counts(
    pairs: Sequence[RelationPair],
    baseline_stats: dict[Relation, RelationStats],
    candidate_stats: dict[Relation, RelationStats],
    settings: ParitySettings,
) -> tuple[list[RowCountRow], list[Finding]]:
    """Classify each pair: equal, within tolerance, different, or missing on one side."""
    rows: list[RowCountRow] = []
    findings: list[Finding] = []
    for pair in pairs:
        tolerance, source = settings.row_counts.tolerance_for(pair.unique_id, pair.node.name, pair.node.all_tags)
        base, cand = baseline_stats.get(pair.baseline), candidate_stats.get(pair.candidate)
        base_rows = base.row_count if base is not None and base.exists else None
        cand_rows = cand.row_count if cand is not None and cand.exists else None
        delta = rel = None
        if base_rows is None:
            status, reason = RowCountStatus.MISSING_IN_BASELINE, Reason.RELATION_MISSING_IN_BASELINE
        elif cand_rows is None:
            status, reason = RowCountStatus.MISSING_IN_CANDIDATE, Reason.RELATION_MISSING_IN_CANDIDATE
        else:
            delta = cand_rows - base_rows
            rel = (delta / base_rows) if base_rows else (0.0 if delta == 0 else None)
            if delta == 0:
                status, reason = RowCountStatus.EQUAL, None
            elif tolerance.allows(base_rows, cand_rows):
                status, reason = RowCountStatus.WITHIN_TOLERANCE, Reason.ROW_COUNT_WITHIN_TOLERANCE
            else:
                status, reason = RowCountStatus.DIFFERENT, Reason.ROW_COUNT_DIFFERS
        rows.append(
            RowCountRow(
                unique_id=pair.unique_id,
                materialized=pair.node.materialized,
                baseline_relation=str(pair.baseline),
                candidate_relation=str(pair.candidate),
                baseline_rows=base_rows,
                candidate_rows=cand_rows,
                delta=delta,
                relative_delta=rel,
                tolerance_abs=tolerance.abs,
                tolerance_rel=tolerance.rel,
                tolerance_source=source,
                status=status,
            )
        )
        if reason is None:
            continue
        severity = Severity.INFO if status is RowCountStatus.WITHIN_TOLERANCE else Severity.ERROR
        if severity is Severity.ERROR and settings.is_accepted(reason.value, pair.unique_id):
            severity = Severity.EXPLAINED
        findings.append(
            Finding(
                check=Check.ROW_COUNTS,
                reason=reason.value,
                severity=severity,
                subject=pair.unique_id,
                message=_message(pair, status, base_rows, cand_rows, delta),
                explanation=(
                    f"tolerance abs={tolerance.abs} rel={tolerance.rel} ({source})"
                    if status in (RowCountStatus.WITHIN_TOLERANCE, RowCountStatus.DIFFERENT)
                    else None
                ),
            )
        )
    return rows, findings


def _message(pair: RelationPair, status: RowCountStatus, base: int | None, cand: int | None, delta: int | None) -> str:
    if status is RowCountStatus.MISSING_IN_BASELINE:
        return f"{pair.baseline} does not exist in the baseline database"
    if status is RowCountStatus.MISSING_IN_CANDIDATE:
        return f"{pair.candidate} does not exist in the candidate database"
    return f"{pair.unique_id}: {base} rows in the baseline, {cand} in the candidate (delta {delta:+d})"


def count_pairs(
    pairs: Sequence[RelationPair], baseline_wh: Warehouse, candidate_wh: Warehouse
) -> tuple[dict[Relation, RelationStats], dict[Relation, RelationStats]]:
    """Batched stats of both sides' relations without fingerprints (at most two queries per database)."""
    return (
        baseline_wh.relation_stats([pair.baseline for pair in pairs]),
        candidate_wh.relation_stats([pair.candidate for pair in pairs]),
    )
