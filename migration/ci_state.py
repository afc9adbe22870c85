"""Slim CI's state before the first cutover: the manifest of dbt Cloud's latest successful run in the target's
environment, as dbt Cloud's own CI defers to it.

Until a job of the target runs under Prefect, the run-artifact store has no run of it, and `artifacts fetch`
would leave CI without `--state`. dbt Cloud keeps running production until cutover, so its latest successful run
of an environment that `[tenant.dbt_cloud_environments]` maps to the target holds the state CI needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dbt2prefect.dbt_cloud import RunStatus
from dbt2prefect.files import write_text_atomic
from dbt2prefect.tenant import TenantSettings
from migration.dbt_cloud.client import DbtCloudClient
from migration.errors import MigrationError
from parity.baseline import fetch_baseline
from parity.errors import BaselineError

RUNS_TRIED = 10
"""How many of an environment's newest successful runs are tried for one whose steps built something."""


class CiStateError(MigrationError):
    """No dbt Cloud run can give the target's state (no environment mapped, no successful building run)."""


@dataclass(frozen=True)
class DbtCloudState:
    """Which dbt Cloud run's manifest was fetched."""

    run_id: int
    job_id: int
    environment_id: int
    step: int

    def describe(self) -> str:
        return f"dbt Cloud run {self.run_id} (job {self.job_id}, environment {self.environment_id}, step {self.step})"


def target_environments(tenant: TenantSettings, target: str) -> list[int]:
    """The dbt Cloud environment ids `[tenant.dbt_cloud_environments]` maps to `target`.

    Raises:
        CiStateError: none is mapped by id (names cannot be looked up without listing the account's environments).
    """
    ids = [int(key) for key, mapped in tenant.dbt_cloud_environments.items() if mapped == target and key.isdigit()]
    if not ids:
        raise CiStateError(
            f"no successful run of {tenant.deployment_name} on target {target!r} is in the artifact store yet, and no "
            f"dbt Cloud environment id is mapped to {target!r} under [tenant.dbt_cloud_environments] in "
            f"{tenant.settings_file or 'the tenant settings'} to take dbt Cloud's state from; add "
            f'\'"<environment id>" = "{target}"\', or run the target\'s jobs once under Prefect'
        )
    return ids


def fetch_dbt_cloud_state(client: DbtCloudClient, environment_ids: list[int], destination: Path) -> DbtCloudState:
    """Write the manifest of the newest successful run (of those environments) whose steps built something into
    `destination/manifest.json`; the building step's, as parity pins it (`parity.baseline`).

    Raises:
        CiStateError: no such run among each environment's newest successful runs.
        DbtCloudApiError: the API failed.
    """
    found = [
        (int(run.id), int(run.job_definition_id), env)
        for env in environment_ids
        for run in client.list_runs(environment_id=env, status=RunStatus.SUCCESS, limit=RUNS_TRIED)
        if run.job_definition_id is not None
    ]
    for run_id, job_id, env in sorted(found, reverse=True):
        try:
            baseline = fetch_baseline(client, job_id, run_id)
        except BaselineError:
            continue  # a run that built nothing (docs only, a `dbt parse`): try the one before
        step = int(baseline.ref.step or 0)
        raw = client.get_run_artifact_bytes(run_id, "manifest.json", step=step)
        try:
            write_text_atomic(destination / "manifest.json", raw.decode("utf-8"))
        except OSError as exc:
            raise CiStateError(f"could not write {destination}: {exc.strerror or exc}; pick another --to") from None
        return DbtCloudState(run_id=run_id, job_id=job_id, environment_id=env, step=step)
    environments = ", ".join(str(e) for e in environment_ids)
    raise CiStateError(
        f"dbt Cloud has no successful run that built anything in environment(s) {environments} among the "
        f"{RUNS_TRIED} newest; run the production job once in dbt Cloud (or under Prefect) first"
    )
