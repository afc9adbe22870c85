"""Values bound to runs: prove that the data parity reads is what the compared runs left.

A comparison names a baseline run (dbt Cloud) and a candidate run (Prefect). Both wrote a database that other
runs may have rewritten since (the hourly jobs keep rebuilding prod; a hand-started run on the parity target
rebuilds the parity tables without the job's environment variables), or are rewriting while parity reads.
This module lists the writes to each side's database that ended after the compared run started (or are still
running), and which of the job's relations they touched:

- candidate side: the artifact store's writer records of the candidate's target (every `run_dbt_wg` run records
  itself when it starts and ends, with the nodes it wrote);
- baseline side: dbt Cloud runs of the baseline's environment (its jobs share its connection) that finished
  after the baseline started or are running, with the nodes of their run_results; and the store's writer
  records of the baseline target (Prefect runs on prod after a cutover).

A relation rewritten on one side fails parity (`candidate_data_stale` / `baseline_moved`, with the fix). When the
baseline warehouse has Time Travel (Snowflake), baseline tables are read `AT(TIMESTAMP => <baseline end>)`
instead, and only its views, which Time Travel cannot read, still fail. A relation whose last writer on both
sides is the same job's completed run is comparable (both hold that job's data), and is noted, not failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from dbt2prefect.artifact_store import ArtifactStore, WriterRecord
from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.errors import ExternalServiceError
from parity.baseline import DbtCloudRuns
from parity.model import Check, Finding, Reason, Severity

RUN_PAGE = 100
WRITING_STATUSES = frozenset({"success", "error", "fail", "warn", "pass"})


@dataclass(frozen=True)
class Write:
    """One run that wrote a side's database after the compared run started, or is writing it now."""

    system: Literal["prefect", "dbt_cloud"]
    run_id: str
    job_id: int | None
    finished_at: datetime | None
    """None: running now."""
    nodes: frozenset[str] | None
    """The nodes it wrote; None: any (running, unknown, or a macro that can write anything)."""

    def touches(self, unique_id: str) -> bool:
        return self.nodes is None or unique_id in self.nodes

    def describe(self) -> str:
        who = "dbt Cloud run" if self.system == "dbt_cloud" else "flow run"
        job = f" of job {self.job_id}" if self.job_id is not None else " (no dbt Cloud job)"
        when = "is writing now" if self.finished_at is None else f"ended {self.finished_at.isoformat()}"
        return f"{who} {self.run_id}{job} {when}"


def store_writes(
    store: ArtifactStore,
    tenant: str,
    deployment: str,
    target: str,
    since: datetime,
    now: datetime,
    exclude: str | None = None,
) -> list[Write]:
    """Writer records of `target` that ended after `since` or are running (a run past its expiry counts as
    having ended then: it was killed without reporting)."""
    writes: list[Write] = []
    for record in store.writers(tenant, deployment, target):
        if record.flow_run_id == exclude:
            continue
        ended = record.finished_at or (record.expires_at if record.expires_at <= now else None)
        if ended is not None and ended <= since:
            continue
        writes.append(_from_record(record, ended))
    return writes


def _from_record(record: WriterRecord, ended: datetime | None) -> Write:
    nodes = record.nodes if record.finished_at is not None else None
    return Write("prefect", record.flow_run_id, record.job_id, ended, nodes)


def own_record(store: ArtifactStore, tenant: str, deployment: str, target: str, run_id: str) -> WriterRecord | None:
    """The candidate run's own writer record, None when it has none (a run from before records existed)."""
    return next((r for r in store.writers(tenant, deployment, target) if r.flow_run_id == run_id), None)


def _executed(client: DbtCloudRuns, run: Any) -> frozenset[str] | None:
    """Nodes a finished dbt Cloud run wrote (every step's run_results), None when they cannot be read."""
    nodes: set[str] = set()
    detailed = client.get_run(int(run.id), include_related=("run_steps",))
    for step in detailed.run_steps:
        try:
            results = client.get_run_artifact(int(run.id), "run_results.json", step=int(step.index))
        except ExternalServiceError as exc:
            if getattr(exc, "status_code", None) == 404:
                continue  # a step without run results (clone, deps)
            raise
        which = str((results.get("args") or {}).get("which") or "")
        if which in ("test", "ls", "list", "compile", "generate", "docs", "freshness", "source"):
            continue
        if which == "run-operation":
            return None  # a macro may write any relation
        for result in results.get("results") or []:
            uid = str(result.get("unique_id") or "")
            if uid and not uid.startswith("test.") and str(result.get("status")) in WRITING_STATUSES:
                nodes.add(uid)
    return frozenset(nodes)


def cloud_writes(client: DbtCloudRuns, environment_id: int, baseline_id: int, since: datetime) -> list[Write]:
    """dbt Cloud runs of the environment, other than the baseline, that finished after `since` or are running."""
    runs = list(client.list_runs(environment_id=environment_id, order_by="-id", limit=RUN_PAGE))
    writes: list[Write] = []
    for run in runs:
        if int(run.id) == baseline_id or run.status in (RunStatus.QUEUED,):
            continue
        job = int(run.job_definition_id) if run.job_definition_id is not None else None
        if run.status in (RunStatus.STARTING, RunStatus.RUNNING):
            writes.append(Write("dbt_cloud", str(run.id), job, None, None))
        elif run.finished_at is not None and run.finished_at > since:
            writes.append(Write("dbt_cloud", str(run.id), job, run.finished_at, _executed(client, run)))
    oldest = min((r.created_at for r in runs if r.created_at is not None), default=None)
    if len(runs) == RUN_PAGE and oldest is not None and oldest > since:
        # More runs than one page since the baseline: the ones not listed may have written anything.
        writes.append(Write("dbt_cloud", f"(runs older than {runs[-1].id})", None, oldest, None))
    return writes


def _last(writes: Iterable[Write], unique_id: str) -> Write | None:
    touching = [w for w in writes if w.touches(unique_id)]
    running = [w for w in touching if w.finished_at is None]
    if running:
        return running[0]
    return max(touching, key=lambda w: w.finished_at or datetime.min, default=None)


def binding_findings(
    relations: Sequence[tuple[str, str | None]],
    baseline: Sequence[Write],
    candidate: Sequence[Write],
    time_travel: bool,
    candidate_run: str,
    job_id: int,
) -> list[Finding]:
    """Findings for the job's relations (unique_id, materialization) rewritten after the compared runs.

    Args:
        time_travel: the baseline's tables are read as of the baseline run's end (Snowflake Time Travel).
    """
    stale: dict[Write, list[str]] = {}
    moved: dict[Write, list[str]] = {}
    same: dict[tuple[int, str], list[str]] = {}
    for unique_id, materialized in relations:
        b = None if time_travel and materialized != "view" else _last(baseline, unique_id)
        c = _last(candidate, unique_id)
        if b is None and c is None:
            continue
        if (
            b is not None
            and c is not None
            and b.job_id is not None
            and b.job_id == c.job_id
            and b.finished_at is not None
            and c.finished_at is not None
        ):
            same.setdefault((b.job_id, f"{b.describe()}; {c.describe()}"), []).append(unique_id)
            continue
        if c is not None:
            stale.setdefault(c, []).append(unique_id)
        if b is not None:
            moved.setdefault(b, []).append(unique_id)
    findings: list[Finding] = []
    for write, uids in stale.items():
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.CANDIDATE_DATA_STALE.value,
                severity=Severity.ERROR,
                subject=write.run_id,
                message=f"{len(uids)} relation(s) of the candidate run {candidate_run} were rewritten by "
                f"{write.describe()}: {_names(uids)}",
                explanation=(
                    "wait until that run ends, then "
                    if write.finished_at is None
                    else "the parity tables no longer hold what the candidate run left: "
                )
                + f"rerun parity without --candidate-run {job_id}=... (it starts a fresh candidate run), or name "
                f"the last run of job {job_id} on the parity target (--candidate-run {job_id}=latest); never start "
                "other runs on the parity target while parity reads it",
            )
        )
    for write, uids in moved.items():
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.BASELINE_MOVED.value,
                severity=Severity.ERROR,
                subject=write.run_id,
                message=f"{len(uids)} relation(s) of the baseline were rewritten by {write.describe()} after "
                f"the baseline run: {_names(uids)}",
                explanation=(
                    "wait until that run ends and rerun parity"
                    if write.finished_at is None
                    else "rerun parity right after the job's next dbt Cloud run, before another run of its "
                    "environment rewrites these relations (or pause the jobs that do while parity runs)"
                )
                + ("; views cannot be read as of the run with Time Travel" if time_travel else ""),
            )
        )
    for (job, runs), uids in same.items():
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.REWRITTEN_BY_SAME_JOB.value,
                severity=Severity.INFO,
                subject=str(job),
                message=f"{len(uids)} relation(s) were last written on both sides by job {job} ({runs}): they are "
                f"compared as that job's data, not the compared runs': {_names(uids)}",
            )
        )
    return findings


def _names(unique_ids: Sequence[str], shown: int = 10) -> str:
    names = ", ".join(sorted(unique_ids)[:shown])
    return names + (f" and {len(unique_ids) - shown} more" if len(unique_ids) > shown else "")
