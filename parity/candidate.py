"""Candidates from the run-artifact store: a `run_dbt_wg` flow run's artifacts and its recorded parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbt2prefect.artifact_store import RUN_RECORD, ArtifactStore
from dbt2prefect.errors import ArtifactStoreError
from parity.artifacts import RunArtifacts, parse_catalog, parse_manifest, parse_run_results
from parity.errors import CandidateError
from parity.model import Check, Finding, Reason, RunRef, Severity

# Parameters that may legitimately differ between the translated job and the parity run.
_IGNORED_PARAMETERS = frozenset(
    {
        "target",
        "connection",
        "profiles_strategy",
        "project_dir",
        "per_node_tasks",
        "node_task_runs",
        "timeout_seconds",
        "dbt_cloud_job_id",
        "dbt_cloud_job_name",
        "parity_candidate",
        "shadow_of_run",
    }
)
LATEST_RUN = "latest"
"""`--candidate-run JOB=latest`: the job's last stored run on the parity target, found by its dbt_cloud_job_id."""


@dataclass(frozen=True)
class Candidate:
    artifacts: RunArtifacts
    ref: RunRef
    record: dict[str, Any]


def load_candidate(store: ArtifactStore, tenant: str, deployment: str, flow_run_id: str) -> Candidate:
    """A stored `run_dbt_wg` run by flow-run id.

    Raises:
        CandidateError: the run is not in the store or lacks manifest.json / run_results.json.
    """
    key = store.find_run(tenant, deployment, flow_run_id)
    if key is None:
        raise CandidateError(
            f"flow run {flow_run_id} is not in the artifact store {store.url} under {tenant}/{deployment}; "
            "check the id (dbt2prefect parity --candidate-run JOB=FLOW_RUN_ID) or run the job on the parity target"
        )
    where = f"{store.url}/{tenant}/{deployment}/{key.target}/{flow_run_id}"
    try:
        record = store.read_json(key, RUN_RECORD) if store.has(key, RUN_RECORD) else {}
        manifest = parse_manifest(store.read_json(key, "manifest.json"), f"{where}/manifest.json")
        results = parse_run_results(store.read_json(key, "run_results.json"), f"{where}/run_results.json")
        catalog = (
            parse_catalog(store.read_json(key, "catalog.json"), f"{where}/catalog.json")
            if store.has(key, "catalog.json")
            else None
        )
    except ArtifactStoreError as exc:
        raise CandidateError(f"candidate run {flow_run_id}: {exc}") from None
    artifacts = RunArtifacts(
        label="candidate", manifest=manifest, run_results=results, catalog=catalog, target=key.target
    )
    ref = RunRef(
        system="prefect",
        run_id=flow_run_id,
        command=results.command,
        target=key.target,
        generated_at=results.metadata.generated_at,
        dbt_version=results.metadata.dbt_version,
        location=str(store.local_path(key) or where),
    )
    return Candidate(artifacts=artifacts, ref=ref, record=record)


def job_candidate_run(store: ArtifactStore, tenant: str, deployment: str, target: str, job_id: int) -> str:
    """The flow-run id of dbt Cloud job `job_id`'s last stored run on `target`.

    Raises:
        CandidateError: the store holds no run of that job on that target.
    """
    try:
        key = store.job_run(tenant, deployment, target, job_id)
    except ArtifactStoreError as exc:
        raise CandidateError(f"job {job_id}: {exc}") from None
    if key is None:
        raise CandidateError(
            f"the artifact store {store.url} holds no run of job {job_id} on target {target!r} under "
            f"{tenant}/{deployment}; run the job's parameters there (with dbt_cloud_job_id={job_id}) or leave out "
            f"--candidate-run {job_id}={LATEST_RUN} so parity starts one"
        )
    return key.flow_run_id


def parameter_findings(
    expected: Mapping[str, Any], record: Mapping[str, Any], candidate_target: str, stored_under: str | None = None
) -> list[Finding]:
    """Differences between the job's translated parameters and the parameters the candidate run recorded.

    `stored_under` is the target folder the run's artifacts were stored under: its connection, which decides
    the warehouse the run wrote (a run with `target=parity` and `connection=prod` rebuilt prod).
    """
    findings: list[Finding] = []
    recorded = record.get("parameters")
    if not isinstance(recorded, Mapping):
        recorded = {}
    if recorded.get("target") not in (None, candidate_target):
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.CANDIDATE_WRONG_TARGET.value,
                severity=Severity.ERROR,
                subject="target",
                message=f"the candidate run used target {recorded.get('target')!r}, not {candidate_target!r}",
                explanation="parity compares a run on the parity target; prod must never be written by parity",
            )
        )
    connections = {recorded.get("connection"), stored_under} - {None, candidate_target}
    if connections:
        used = ", ".join(sorted(repr(str(c)) for c in connections))
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.CANDIDATE_WRONG_CONNECTION.value,
                severity=Severity.ERROR,
                subject="connection",
                message=f"the candidate run connected to {used}, not to the parity target {candidate_target!r}: "
                "it wrote that warehouse, not the parity one",
                explanation=f"rerun the job with target={candidate_target} and no connection parameter (or "
                f"connection={candidate_target}); never pass a run that wrote another target as a candidate",
            )
        )
    if not recorded:
        return findings
    expected_job, recorded_job = expected.get("dbt_cloud_job_id"), recorded.get("dbt_cloud_job_id")
    if recorded_job is not None and expected_job is not None and recorded_job != expected_job:
        findings.append(
            Finding(
                check=Check.ARTIFACTS,
                reason=Reason.CANDIDATE_PARAMETERS_DIFFER.value,
                severity=Severity.ERROR,
                subject="dbt_cloud_job_id",
                message=f"the candidate run is a run of job {recorded_job}, not of job {expected_job}",
                explanation="pass the flow-run id of a run of this job (or JOB=latest)",
            )
        )
    for name in sorted(set(expected) - _IGNORED_PARAMETERS):
        if recorded.get(name) != expected[name]:
            findings.append(
                Finding(
                    check=Check.ARTIFACTS,
                    reason=Reason.CANDIDATE_PARAMETERS_DIFFER.value,
                    severity=Severity.ERROR,
                    subject=name,
                    message=f"parameter {name!r}: the job translates to {expected[name]!r}, "
                    f"the candidate run used {recorded.get(name)!r}",
                    explanation="start the candidate with the job's translated parameters (dbt2prefect plan)",
                )
            )
    return findings
