"""Compare one job's baseline run with its candidate run: every check, one `JobParity` with a verdict."""

from __future__ import annotations

from dataclasses import dataclass, field

from dbt2prefect.warehouse import Warehouse
from parity.artifacts import RunArtifacts
from parity.model import (
    Check,
    Finding,
    JobParity,
    Reason,
    RowCountRow,
    RunRef,
    SchemaRow,
    Severity,
    ValueRow,
    Verdict,
)
from parity.nodes import Explainer, SelectionContext, compare_node_counts, compare_node_sets, compare_statuses
from parity.rowcounts import RelationPair, compare_row_counts, relation_pairs
from parity.schema import compare_schemas
from parity.settings import ParitySettings
from parity.timings import compare_timings
from parity.values import compare_values, ephemeral_rows, fingerprint_specs, plan_values


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
    value_rows: list[ValueRow] = []
    compared = 0
    queries: dict[str, int] = {}
    drill: dict[str, int] = {}
    if baseline_wh is not None and candidate_wh is not None:
        warehouse_pass = _warehouse_pass(pairs, inputs, settings, baseline_wh, candidate_wh)
        row_rows, value_rows, schema_rows, compared = (
            warehouse_pass.row_rows,
            warehouse_pass.value_rows,
            warehouse_pass.schema_rows,
            warehouse_pass.schema_compared,
        )
        findings += warehouse_pass.findings
        queries, drill = warehouse_pass.queries, warehouse_pass.drill_down_queries
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
        value_checks=value_rows,
        schema_diffs=schema_rows,
        schema_relations_compared=compared,
        timing_summary=summary,
        timings=timing_rows,
        findings=findings,
        queries_issued=queries,
        drill_down_queries=drill,
    )


@dataclass
class _WarehousePass:
    row_rows: list[RowCountRow] = field(default_factory=list)
    value_rows: list[ValueRow] = field(default_factory=list)
    schema_rows: list[SchemaRow] = field(default_factory=list)
    schema_compared: int = 0
    findings: list[Finding] = field(default_factory=list)
    queries: dict[str, int] = field(default_factory=dict)
    drill_down_queries: dict[str, int] = field(default_factory=dict)


def _warehouse_pass(
    pairs: list[RelationPair],
    inputs: JobInputs,
    settings: ParitySettings,
    baseline_wh: Warehouse,
    candidate_wh: Warehouse,
) -> _WarehousePass:
    """Row counts, schema and fingerprints from two queries per database; drill-down only where values differ."""
    result = _WarehousePass()
    before = (baseline_wh.queries_issued, candidate_wh.queries_issued)
    base_desc = baseline_wh.describe([pair.baseline for pair in pairs])
    cand_desc = candidate_wh.describe([pair.candidate for pair in pairs])
    plans = []
    if settings.values.enabled:
        same_engine = baseline_wh.dialect.name == candidate_wh.dialect.name
        plans = plan_values(pairs, base_desc, cand_desc, settings, same_engine, baseline_wh.dialect)
    else:
        result.findings.append(
            Finding(
                check=Check.VALUES,
                reason=Reason.VALUES_DISABLED.value,
                severity=Severity.INFO,
                subject="parity.values.enabled",
                message="value parity is switched off in the parity settings: only row counts are compared",
            )
        )
    base_specs, cand_specs = fingerprint_specs(plans)
    base_stats = baseline_wh.measure(base_desc, base_specs)
    cand_stats = candidate_wh.measure(cand_desc, cand_specs)
    result.row_rows, row_findings = compare_row_counts(pairs, base_stats, cand_stats, settings)
    result.findings += row_findings
    if settings.check_schema:
        result.schema_rows, schema_findings, result.schema_compared = compare_schemas(
            pairs, inputs.baseline.catalog, inputs.candidate.catalog, base_desc, cand_desc, settings
        )
        result.findings += schema_findings
    result.queries = {
        "baseline": baseline_wh.queries_issued - before[0],
        "candidate": candidate_wh.queries_issued - before[1],
    }
    if settings.values.enabled:
        values = compare_values(
            plans, base_stats, cand_stats, baseline_wh, candidate_wh, inputs.candidate.manifest, settings
        )
        result.value_rows = values.rows + ephemeral_rows(pairs, inputs.candidate.manifest)
        result.findings += values.findings
    result.drill_down_queries = {
        "baseline": baseline_wh.queries_issued - before[0] - result.queries["baseline"],
        "candidate": candidate_wh.queries_issued - before[1] - result.queries["candidate"],
    }
    return result
