"""Baselines from dbt Cloud: a successful run's artifacts of the step that built, plus catalog.json when docs ran.

The dbt Cloud artifact endpoint serves the LAST step's files unless a step is given; for a job with "generate
docs" that is the docs step. So the step is pinned: steps are tried from the last to the first and the first
whose run_results.json says `args.which` is a building command (build, run, test, seed, snapshot) wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dbt2prefect.errors import ExternalServiceError
from parity.artifacts import RunArtifacts, parse_catalog, parse_manifest, parse_run_results
from parity.errors import BaselineError
from parity.model import RunRef

BUILDING_COMMANDS = frozenset({"build", "run", "test", "seed", "snapshot"})


class DbtCloudRuns(Protocol):
    """The part of the dbt Cloud client parity uses (`migration.dbt_cloud.client.DbtCloudClient` has it)."""

    def latest_successful_run(self, job_id: int) -> Any: ...

    def list_runs(self, *, environment_id: int | None = None, order_by: str = "-id", limit: int = 100) -> Any: ...

    def get_run(self, run_id: int, include_related: Sequence[str] = ("run_steps",)) -> Any: ...

    def get_run_artifact(self, run_id: int, path: str, *, step: int | None) -> Any: ...


@dataclass(frozen=True)
class Baseline:
    artifacts: RunArtifacts
    ref: RunRef
    environment_id: int | None = None


def _artifact(client: DbtCloudRuns, run_id: int, name: str, step: int) -> Any | None:
    try:
        return client.get_run_artifact(run_id, name, step=step)
    except ExternalServiceError as exc:
        if getattr(exc, "status_code", None) == 404:
            return None  # this step wrote no such file (clone, deps, a failed step)
        raise


def fetch_baseline(client: DbtCloudRuns, job_id: int, run_id: int | None = None, target: str | None = None) -> Baseline:
    """The baseline of a job: `run_id`, or the job's latest successful run.

    Raises:
        BaselineError: the job never succeeded, or no step of the run built anything.
    """
    if run_id is None:
        latest = client.latest_successful_run(job_id)
        if latest is None:
            raise BaselineError(
                f"dbt Cloud job {job_id} has no successful run to compare with; run it in dbt Cloud first "
                "or leave it out with --job"
            )
        run_id = int(latest.id)
    run = client.get_run(run_id, include_related=("run_steps",))
    owner = getattr(run, "job_definition_id", None)
    if owner is not None and int(owner) != job_id:
        raise BaselineError(
            f"dbt Cloud run {run_id} is a run of job {owner}, not of job {job_id}; pass a run of job {job_id}"
        )
    steps = sorted((int(step.index) for step in run.run_steps), reverse=True)
    if not steps:
        raise BaselineError(f"dbt Cloud run {run_id} of job {job_id} lists no run steps; cannot pin the building step")
    for step in steps:
        raw_results = _artifact(client, run_id, "run_results.json", step)
        if raw_results is None:
            continue
        results = parse_run_results(raw_results, f"dbt Cloud run {run_id} step {step} run_results.json")
        if results.command not in BUILDING_COMMANDS:
            continue
        raw_manifest = _artifact(client, run_id, "manifest.json", step)
        if raw_manifest is None:
            raise BaselineError(f"dbt Cloud run {run_id} step {step} has run_results.json but no manifest.json")
        manifest = parse_manifest(raw_manifest, f"dbt Cloud run {run_id} step {step} manifest.json")
        catalog = None
        for later in sorted(s for s in steps if s > step):
            raw_catalog = _artifact(client, run_id, "catalog.json", later)
            if raw_catalog is not None:
                catalog = parse_catalog(raw_catalog, f"dbt Cloud run {run_id} step {later} catalog.json")
                break
        base_target = str(results.args.get("target") or target or "") or None
        artifacts = RunArtifacts(
            label="baseline", manifest=manifest, run_results=results, catalog=catalog, target=base_target
        )
        ref = RunRef(
            system="dbt_cloud",
            run_id=str(run_id),
            step=step,
            command=results.command,
            target=base_target,
            generated_at=results.metadata.generated_at,
            dbt_version=results.metadata.dbt_version,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        return Baseline(artifacts=artifacts, ref=ref, environment_id=run.environment_id)
    raise BaselineError(
        f"no step of dbt Cloud run {run_id} (job {job_id}) produced run_results.json of a building command "
        "(build, run, test, seed, snapshot)"
    )
