"""Parity for a list of jobs: fetch baselines, find or start candidates, resolve selections, compare, report.

The pieces that talk to the outside are passed in (a dbt Cloud client, the artifact store, a function that
gives a target's dbt profile output, optionally a function that starts a candidate run), so the CLI and the
Prefect flow share this code and tests can use the sandbox's real servers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbt2prefect.artifact_store import ArtifactStore, WriterRecord
from dbt2prefect.errors import ConfigError
from dbt2prefect.run_job import runs_root
from dbt2prefect.warehouse import Warehouse, output_location, warehouse_from_profile_output
from parity.baseline import Baseline, DbtCloudRuns, fetch_baseline
from parity.binding import Write, binding_findings, cloud_writes, own_record, store_writes
from parity.candidate import LATEST_RUN, Candidate, job_candidate_run, load_candidate, parameter_findings
from parity.compare import JobInputs, compare_job
from parity.errors import CandidateError, ParitySettingsError, SelectionError
from parity.model import Check, Finding, JobParity, ParityReport, Reason, Severity, Verdict
from parity.nodes import SelectionContext
from parity.noise import calibrate
from parity.rowcounts import relation_pairs
from parity.selection import SelectionResolver, pick_step, selections_from_parameters
from parity.settings import ParitySettings, production_targets, refuse_production_candidate


@dataclass(frozen=True)
class JobSpec:
    """One migrated job: its translated `run_dbt_wg` parameters and, optionally, pinned runs."""

    job_id: int
    parameters: Mapping[str, Any]
    name: str = ""
    candidate_run_id: str | None = None
    baseline_run_id: int | None = None

    def candidate_parameters(self, candidate_target: str) -> dict[str, Any]:
        """The job's parameters with the target switched to the parity target (and its own connection: the
        job's environment block would point the parity run at that environment's warehouse), marked as a parity
        candidate (see `dbt2prefect.names`)."""
        kept = {k: v for k, v in self.parameters.items() if k != "connection"}
        return {**kept, "target": candidate_target, "parity_candidate": True}


ProfileOutputs = Callable[[str], Mapping[str, Any]]
"""target name -> the dbt profile output dict of that target (secrets included; never logged)."""

CandidateStarter = Callable[[JobSpec, dict[str, Any]], str]
"""(job, parameters on the parity target) -> flow-run id of the finished `run_dbt_wg` run."""


@dataclass
class ParityContext:
    """What `compare_jobs` needs from the outside world."""

    tenant: str
    deployment: str
    store: ArtifactStore
    baselines: DbtCloudRuns
    settings: ParitySettings = field(default_factory=ParitySettings)
    project_dir: Path | None = None
    profile_outputs: ProfileOutputs | None = None
    start_candidate: CandidateStarter | None = None
    environments: Mapping[str, str] = field(default_factory=dict)
    """The tenant's dbt Cloud environment -> target map: those targets are production, never a candidate."""
    settings_source: Path | str | None = None


def guard_candidate_target(specs: Sequence[JobSpec], ctx: ParityContext) -> None:
    """Refuse a candidate target that production uses, by name or by the database its profile writes.

    Raises:
        ParitySettingsError: the candidate target is a production target or writes a production database.
    """
    production = production_targets(ctx.environments, [(spec.job_id, spec.parameters) for spec in specs])
    refuse_production_candidate(ctx.settings, production, ctx.settings_source)
    if ctx.profile_outputs is None:
        return
    candidate = ctx.settings.candidate_target
    where = output_location(ctx.profile_outputs(candidate))
    if where is None:
        return
    for target, why in sorted(production.items()):
        try:
            output = ctx.profile_outputs(target)
        except ConfigError:
            continue  # a target.name without a profile output of its own (e.g. "default") writes no database
        if output_location(output) == where:
            refuse_production_candidate(
                ctx.settings,
                {candidate: f"its profile writes the same database as {target!r}, {why}"},
                ctx.settings_source,
            )


CALIBRATION_DRILL_DOWN = 100_000
"""A calibration names the columns of every differing relation (parity itself stops at `max_drill_down`)."""


class _Warehouses:
    def __init__(self, outputs: ProfileOutputs | None, statement_timeout: int | None = None) -> None:
        self._outputs = outputs
        self._timeout = statement_timeout
        self._open: dict[str, Warehouse] = {}

    def get(self, target: str | None) -> Warehouse | None:
        if self._outputs is None or not target:
            return None
        if target not in self._open:
            self._open[target] = warehouse_from_profile_output(self._outputs(target), self._timeout)
        return self._open[target]

    def close(self) -> None:
        for warehouse in self._open.values():
            warehouse.close()
        self._open.clear()


def _selection(
    resolver: SelectionResolver | None, spec: JobSpec, command: str | None, base_target: str | None, cand_target: str
) -> tuple[SelectionContext, list[Finding]]:
    if resolver is None:
        return SelectionContext(baseline_target=base_target, candidate_target=cand_target), []
    try:
        steps = selections_from_parameters(spec.candidate_parameters(cand_target), cand_target)
        step = pick_step(steps, command)
        if step is None:
            raise SelectionError(f"job {spec.job_id}'s parameters hold no building step")
        selected = resolver.resolve(step, cand_target)
        under_base = resolver.enabled_nodes(base_target, step.vars) if base_target else None
    except SelectionError as exc:
        finding = Finding(
            check=Check.NODE_SETS,
            reason="selection_not_resolved",
            severity=Severity.ERROR,
            subject="selection",
            message=str(exc),
        )
        return SelectionContext(baseline_target=base_target, candidate_target=cand_target), [finding]
    context = SelectionContext(
        selected=selected,
        enabled_under_baseline_target=under_base,
        baseline_target=base_target,
        candidate_target=cand_target,
    )
    return context, []


def compare_one(
    spec: JobSpec, ctx: ParityContext, resolver: SelectionResolver | None, warehouses: _Warehouses
) -> JobParity:
    """Baseline, candidate, selection, warehouses -> one job's parity."""
    cand_target = ctx.settings.candidate_target
    baseline = fetch_baseline(ctx.baselines, spec.job_id, spec.baseline_run_id, target=spec.parameters.get("target"))
    run_id = _candidate_run(spec, ctx, cand_target, spec.candidate_run_id)
    candidate = load_candidate(ctx.store, ctx.tenant, ctx.deployment, run_id)
    extra = parameter_findings(spec.parameters, candidate.record, cand_target, candidate.ref.target)
    base_target = baseline.ref.target or spec.parameters.get("target")
    base_wh, cand_wh = warehouses.get(base_target), warehouses.get(candidate.ref.target)
    own = own_record(ctx.store, ctx.tenant, ctx.deployment, str(candidate.ref.target), run_id)
    candidate_ref = candidate.ref.model_copy(
        update={"started_at": own.started_at, "finished_at": own.finished_at} if own else {}
    )
    baseline_ref = baseline.ref
    if base_wh is not None:
        # Read the baseline's tables as they were when its run ended where the warehouse can (Time Travel) and
        # another run has written its environment since; elsewhere a rewrite is detected below and fails.
        moved = baseline.ref.finished_at is not None and bool(_baseline_writes(ctx, baseline))
        base_wh.as_of = baseline.ref.finished_at if base_wh.time_travel and moved else None
        baseline_ref = baseline.ref.model_copy(update={"read_as_of": base_wh.as_of})
    selection, selection_findings = _selection(
        resolver, spec, baseline.artifacts.run_results.command, base_target, cand_target
    )
    inputs = JobInputs(
        job_id=spec.job_id,
        job_name=spec.name,
        baseline=baseline.artifacts,
        baseline_ref=baseline_ref,
        candidate=candidate.artifacts,
        candidate_ref=candidate_ref,
        selection=selection,
        extra_findings=tuple(extra + selection_findings),
    )
    job = compare_job(inputs, ctx.settings, base_wh, cand_wh)
    if base_wh is None or cand_wh is None:
        return job  # no data read: nothing to bind
    # After the reads: a run that wrote while parity read has ended after the compared run started, or runs now.
    return _with_findings(job, _binding(ctx, spec.job_id, baseline, candidate, own, base_wh.as_of is not None))


def _baseline_writes(ctx: ParityContext, baseline: Baseline) -> list[Write]:
    """Runs that wrote the baseline's database after its run started: dbt Cloud runs of its environment, and
    Prefect runs recorded on the target that environment maps to."""
    since = baseline.ref.started_at or baseline.ref.finished_at
    if since is None:
        return []
    writes: list[Write] = []
    if baseline.environment_id is not None:
        writes += cloud_writes(ctx.baselines, baseline.environment_id, int(baseline.ref.run_id), since)
        target = ctx.environments.get(str(baseline.environment_id))
        if target is not None:
            writes += store_writes(ctx.store, ctx.tenant, ctx.deployment, target, since, datetime.now(UTC))
    return writes


def _binding(
    ctx: ParityContext,
    job_id: int,
    baseline: Baseline,
    candidate: Candidate,
    own: WriterRecord | None,
    time_travel: bool,
) -> list[Finding]:
    """Findings on data rewritten after the compared runs (see `parity.binding`)."""
    run_id = candidate.ref.run_id
    if own is None or own.finished_at is None:
        why = "has no writer record in the artifact store" if own is None else "had not recorded its end"
        return [
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.CANDIDATE_DATA_STALE.value,
                severity=Severity.ERROR,
                subject=run_id,
                message=f"the candidate run {run_id} {why}: nothing proves the parity tables hold what it left",
                explanation=f"rerun parity without --candidate-run {job_id}=... so that it starts a candidate run "
                "(runs record when they write), or wait until the run ends",
            )
        ]
    now = datetime.now(UTC)
    target = str(candidate.ref.target)
    cand_writes = store_writes(ctx.store, ctx.tenant, ctx.deployment, target, own.started_at, now, exclude=run_id)
    pairs = relation_pairs(baseline.artifacts, candidate.artifacts)
    relations = [(pair.unique_id, pair.node.materialized) for pair in pairs]
    return binding_findings(relations, _baseline_writes(ctx, baseline), cand_writes, time_travel, run_id, job_id)


def _with_findings(job: JobParity, findings: list[Finding]) -> JobParity:
    if not findings:
        return job
    merged = [*job.findings, *findings]
    failed = any(finding.severity is Severity.ERROR for finding in merged)
    return job.model_copy(update={"findings": merged, "verdict": Verdict.FAIL if failed else Verdict.PASS})


def _candidate_run(spec: JobSpec, ctx: ParityContext, target: str, run_id: str | None) -> str:
    """The flow-run id of the job's run on `target`: the given one, the latest stored one, or a new one."""
    if run_id == LATEST_RUN:
        return job_candidate_run(ctx.store, ctx.tenant, ctx.deployment, target, spec.job_id)
    if run_id is not None:
        return run_id
    if ctx.start_candidate is None:
        raise CandidateError(
            f"job {spec.job_id}: no run on target {target!r} given; pass --candidate-run {spec.job_id}=FLOW_RUN_ID "
            "or let parity start one"
        )
    return ctx.start_candidate(spec, spec.candidate_parameters(target))


def calibrate_one(spec: JobSpec, ctx: ParityContext, warehouses: _Warehouses) -> JobParity:
    """An A/A pair of one job: its run on the parity target and a new run on the calibration target, same code.

    Every value or row-count difference between them is build noise (see `parity.noise.calibrate`). The settings'
    `nondeterministic` columns are compared here, so the proposed lines cover all the noise, not only new noise,
    and every differing relation is drilled into, so each gets its columns named.
    """
    values = ctx.settings.values.model_copy(update={"nondeterministic": {}, "max_drill_down": CALIBRATION_DRILL_DOWN})
    settings = ctx.settings.model_copy(update={"values": values})
    first_target, second_target = settings.candidate_target, settings.calibration_target
    first = load_candidate(
        ctx.store, ctx.tenant, ctx.deployment, _candidate_run(spec, ctx, first_target, spec.candidate_run_id)
    )
    second = load_candidate(ctx.store, ctx.tenant, ctx.deployment, _candidate_run(spec, ctx, second_target, None))
    extra = parameter_findings(spec.parameters, first.record, first_target)
    extra += parameter_findings(spec.parameters, second.record, second_target)
    inputs = JobInputs(
        job_id=spec.job_id,
        job_name=spec.name,
        baseline=first.artifacts,
        baseline_ref=first.ref,
        candidate=second.artifacts,
        candidate_ref=second.ref,
        extra_findings=tuple(extra),
    )
    job = compare_job(inputs, settings, warehouses.get(first.ref.target), warehouses.get(second.ref.target))
    return calibrate(job, second.artifacts.manifest)


def calibrate_jobs(specs: Sequence[JobSpec], ctx: ParityContext) -> ParityReport:
    """Build noise of every job from A/A pairs (see `calibrate_one`); one connection per target across jobs.

    Raises:
        ParitySettingsError: the calibration target is a job's own (production) target: a calibration run there
            would rebuild production.
    """
    writing_prod = sorted(str(s.job_id) for s in specs if s.parameters.get("target") == ctx.settings.calibration_target)
    if writing_prod:
        raise ParitySettingsError(
            f"[parity] calibration_target {ctx.settings.calibration_target!r} is the target of job(s) "
            f"{', '.join(writing_prod)}: a calibration run would rebuild it; name a target of its own"
        )
    warehouses = _Warehouses(ctx.profile_outputs, ctx.settings.statement_timeout_seconds)
    try:
        jobs = [calibrate_one(spec, ctx, warehouses) for spec in specs]
    finally:
        warehouses.close()
    return ParityReport.from_jobs(ctx.tenant, jobs)


def compare_jobs(specs: Sequence[JobSpec], ctx: ParityContext) -> ParityReport:
    """Parity of every job, sharing one parsed project and one connection per target across jobs."""
    guard_candidate_target(specs, ctx)
    warehouses = _Warehouses(ctx.profile_outputs, ctx.settings.statement_timeout_seconds)
    resolver = (
        SelectionResolver(ctx.project_dir, cache_dir=runs_root() / "selection-cache")
        if ctx.project_dir is not None
        else None
    )
    try:
        jobs = [compare_one(spec, ctx, resolver, warehouses) for spec in specs]
    finally:
        warehouses.close()
        if resolver is not None:
            resolver.close()
    return ParityReport.from_jobs(ctx.tenant, jobs)
