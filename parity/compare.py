"""Compare one job's baseline run with its candidate run: every check, one `JobParity` with a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbt2prefect.warehouse import Warehouse
from parity.artifacts import RunArtifacts
from parity.model import Check, Finding, JobParity, Reason, RowCountRow, RunRef, SchemaRow, Severity, Verdict
from parity.nodes import Explainer, SelectionContext, compare_node_counts, compare_node_sets, compare_statuses
from parity.rowcounts import compare_row_counts, count_pairs, relation_pairs
from parity.schema import compare_schemas
from parity.settings import ParitySettings
from parity.timings import compare_timings


@dataclass(frozen=True)
class JobInputs:
    """Everything one job's comparison needs; warehouses are optional (no row counts without them)."""

    job_id: int
    baseline: RunArtifacts
    baseline_ref: RunRef
    candidate: RunArtifacts
    candidate_ref: RunRef
    job_name: str = ""
    selection: SelectionContext = field(default_factory=SelectionContext)
    extra_findings: tuple[Finding, ...] = ()


def compare_job(
    inputs: JobInputs,
    settings: ParitySettings,
    baseline_wh: Warehouse | None = None,
    candidate_wh: Warehouse | None = None,
) -> JobParity:
    """Run every check for one job. Warehouses are used read-only, with batched queries."""
    base, cand = inputs.baseline, inputs.candidate
    findings: list[Finding] = list(inputs.extra_findings)
    base_cmd, cand_cmd = base.run_results.command, cand.run_results.command
    if base_cmd and cand_cmd and base_cmd != cand_cmd:
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.STEP_COMMAND_DIFFERS.value,
                severity=Severity.ERROR,
                subject="run_results.args.which",
                message=f"the baseline step ran 'dbt {base_cmd}', the candidate 'dbt {cand_cmd}'",
                explanation="pin the baseline to the step that built, and compare with the same step of the flow run",
            )
        )
    explainer = Explainer(base.manifest, cand.manifest, inputs.selection)
    count_rows, count_findings = compare_node_counts(base.manifest, cand.manifest, explainer, settings)
    sets = compare_node_sets(base.run_results, cand.run_results, explainer, settings)
    statuses = compare_statuses(base.run_results, cand.run_results, base.manifest, cand.manifest, settings)
    summary, timing_rows, timing_findings = compare_timings(base.run_results, cand.run_results, settings)
    findings += count_findings + sets.findings + statuses.findings

    pairs = relation_pairs(base, cand)
    row_rows: list[RowCountRow] = []
    schema_rows: list[SchemaRow] = []
    compared = 0
    queries: dict[str, int] = {}
    if baseline_wh is not None and candidate_wh is not None:
        before = (baseline_wh.queries_issued, candidate_wh.queries_issued)
        base_stats, cand_stats = count_pairs(pairs, baseline_wh, candidate_wh)
        row_rows, row_findings = compare_row_counts(pairs, base_stats, cand_stats, settings)
        findings += row_findings
        if settings.check_schema:
            schema_rows, schema_findings, compared = compare_schemas(
                pairs, base.catalog, cand.catalog, baseline_wh, candidate_wh, settings
            )
            findings += schema_findings
        queries = {
            "baseline": baseline_wh.queries_issued - before[0],
            "candidate": candidate_wh.queries_issued - before[1],
        }
    elif settings.check_schema:
        schema_rows, schema_findings, compared = compare_schemas(
            pairs, base.catalog, cand.catalog, None, None, settings
        )
        findings += schema_findings
    findings += timing_findings
    failed = any(finding.severity is Severity.ERROR for finding in findings)
    return JobParity(
        job_id=inputs.job_id,
        job_name=inputs.job_name,
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        baseline=inputs.baseline_ref,
        candidate=inputs.candidate_ref,
        node_counts=count_rows,
        node_sets=sets.rows,
        nodes_matched=sets.matched,
        statuses=statuses.rows,
        statuses_matched=statuses.matched,
        row_counts=row_rows,
        schema_diffs=schema_rows,
        schema_relations_compared=compared,
        timing_summary=summary,
        timings=timing_rows,
        findings=findings,
        queries_issued=queries,
    )
