"""Export a dbt Cloud account's jobs to an inventory file (JSON, kept for audit), and read it back.

The inventory keeps each job and environment exactly as the API returned it (`raw`), plus the id of each
job's latest successful run (the parity baseline), the projects' environment variables and each job's overrides
(v3; dbt Cloud masks the values of secret ones). It never holds the token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dbt2prefect.files import overwrite_problem, write_text_atomic
from migration.dbt_cloud.client import DbtCloudClient
from migration.dbt_cloud.errors import DbtCloudNotFoundError, DbtCloudResponseError
from migration.dbt_cloud.models import Environment, EnvironmentVariables, Job, Notification
from migration.env_vars import AccountVariables
from migration.errors import InventoryError

INVENTORY_FORMAT = "dbt2prefect-inventory"
INVENTORY_VERSION = 1

ProgressCallback = Callable[[str, int, int], None]
"""Called as (phase, done, total) while exporting."""


class InventoryJob(BaseModel):
    """One job: the API's raw dict and the id of its latest successful run (None if it never succeeded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    raw: dict[str, Any]
    latest_successful_run_id: int | None = None
    environment_variables: dict[str, Any] | None = Field(
        default=None, description="The v3 `environment-variables/job/` answer for the job (None: not exported)."
    )

    @property
    def job(self) -> Job:
        """The typed view of `raw`."""
        return Job.from_api(self.raw)


class Inventory(BaseModel):
    """What `dbt2prefect export` writes and `plan` reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["dbt2prefect-inventory"] = "dbt2prefect-inventory"
    version: int = INVENTORY_VERSION
    source: Literal["api", "jobs_list_file"] = "api"
    exported_at: datetime | None = None
    host: str | None = Field(default=None, description="Base URL of the account; never carries the token.")
    account_id: int
    project_id: int | None = None
    jobs: list[InventoryJob] = Field(default_factory=list)
    environments: list[dict[str, Any]] = Field(default_factory=list)
    missing_environments: list[int] = Field(
        default_factory=list,
        description="Environment ids jobs refer to that dbt Cloud answered 404 for (e.g. of deleted jobs).",
    )
    environment_variables: dict[str, dict[str, Any]] | None = Field(
        default=None,
        description="Project id -> the v3 `environment-variables/environment/` answer (None: not exported, as "
        "in an inventory written before they were, or a saved jobs list).",
    )
    notifications: list[dict[str, Any]] = Field(
        default_factory=list, description="The account's job notification settings (v2 `notifications/`)."
    )

    def job_models(self) -> list[Job]:
        """Every job as a typed `Job`, in file order."""
        return [j.job for j in self.jobs]

    def environment_models(self) -> dict[int, Environment]:
        """Environments by id."""
        return {int(e["id"]): Environment.from_api(e) for e in self.environments}

    def notification_models(self) -> list[Notification]:
        """The notification settings, typed."""
        return [Notification.from_api(n) for n in self.notifications]

    def latest_successful_runs(self) -> dict[int, int | None]:
        """Latest successful run id by job id."""
        return {int(j.raw["id"]): j.latest_successful_run_id for j in self.jobs}

    def environment_variable_models(self) -> AccountVariables | None:
        """The exported environment variables, typed; None when the inventory has none (not exported)."""
        if self.environment_variables is None:
            return None
        return AccountVariables(
            projects={int(p): EnvironmentVariables.from_api(v) for p, v in self.environment_variables.items()},
            jobs={
                int(j.raw["id"]): EnvironmentVariables.from_api(j.environment_variables)
                for j in self.jobs
                if j.environment_variables is not None
            },
        )


def export_inventory(
    client: DbtCloudClient,
    *,
    project_id: int | None = None,
    include_deleted: bool = True,
    max_workers: int = 8,
    progress: ProgressCallback | None = None,
) -> Inventory:
    """Read every job, its environment, its latest successful run and its environment variables from dbt Cloud.

    An environment dbt Cloud answers 404 for (a deleted job's) is listed in `missing_environments`; the
    export goes on.

    Jobs are paged in order; the per-job run lookups and per-environment reads then run concurrently on
    a bounded pool (the client's httpx.Client is thread-safe).

    Args:
        include_deleted: also export deleted jobs (state 2), so a plan can report them as skipped.
        max_workers: concurrent API calls for runs and environments.
    """
    if max_workers < 1:
        raise InventoryError("export max_workers must be at least 1")
    report = progress or (lambda phase, done, total: None)
    jobs: list[dict[str, Any]] = []
    for raw in client.iter_job_dicts(project_id=project_id, state="all" if include_deleted else "active"):
        problem = _job_problem(raw)  # fail early, naming the job, if the API shape changed
        if problem is not None:
            raise DbtCloudResponseError(f"dbt Cloud job {raw.get('id')}: {problem}; the API shape changed")
        jobs.append(raw)
        report("jobs", len(jobs), len(jobs))
    env_keys = sorted({(int(j["environment_id"]), int(j["project_id"])) for j in jobs})
    projects = sorted({int(j["project_id"]) for j in jobs})
    # A deleted job is not migrated: its overrides are not needed (and dbt Cloud may no longer answer for it).
    live = [j for j in jobs if not Job.from_api(j).is_deleted]
    total = len(jobs) + len(env_keys) + len(projects) + len(live)
    done = 0
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="dbt-cloud-export") as pool:
        run_futures = [pool.submit(client.latest_successful_run, int(j["id"])) for j in jobs]
        env_futures = [pool.submit(client.get_environment_dict, env, proj) for env, proj in env_keys]
        var_futures = [pool.submit(client.get_environment_variables, proj) for proj in projects]
        override_futures = {
            int(j["id"]): pool.submit(client.get_job_environment_variables, int(j["project_id"]), int(j["id"]))
            for j in live
        }
        latest: list[int | None] = []
        for future in run_futures:
            run = future.result()
            latest.append(run.id if run is not None else None)
            done += 1
            report("runs and environments", done, total)
        environments = []
        missing: list[int] = []
        for (env_id, _project), env_future in zip(env_keys, env_futures, strict=True):
            try:
                environments.append(env_future.result())
            except DbtCloudNotFoundError:
                # A deleted job may point at an environment that no longer exists: record it and go on.
                missing.append(env_id)
            done += 1
            report("runs and environments", done, total)
        variables: dict[str, dict[str, Any]] = {}
        for project, var_future in zip(projects, var_futures, strict=True):
            variables[str(project)] = var_future.result().model_dump(mode="json")
            done += 1
            report("environment variables", done, total)
        overrides: dict[int, dict[str, Any]] = {}
        for job_id, override_future in override_futures.items():
            overrides[job_id] = override_future.result().model_dump(mode="json")
            done += 1
            report("environment variables", done, total)
    return Inventory(
        source="api",
        exported_at=datetime.now(UTC),
        host=client.host,
        account_id=client.account_id,
        project_id=project_id,
        jobs=[
            InventoryJob(raw=raw, latest_successful_run_id=r, environment_variables=overrides.get(int(raw["id"])))
            for raw, r in zip(jobs, latest, strict=True)
        ],
        environments=environments,
        missing_environments=missing,
        notifications=[n.model_dump(mode="json") for n in client.iter_notifications()],
        environment_variables=variables,
    )


def read_job_context(client: DbtCloudClient, jobs: list[Job]) -> tuple[dict[int, Environment], AccountVariables]:
    """The environments and environment variables of `jobs` (their live ones), as `export_inventory` reads them,
    for a caller that plans a few jobs without a whole export (parity)."""
    live = [j for j in jobs if not j.is_deleted]
    environments = {
        env: client.get_environment(env, project)
        for env, project in sorted({(j.environment_id, j.project_id) for j in live})
    }
    variables = AccountVariables(
        projects={p: client.get_environment_variables(p) for p in sorted({j.project_id for j in live})},
        jobs={j.id: client.get_job_environment_variables(j.project_id, j.id) for j in live},
    )
    return environments, variables


INVENTORY_SIGNATURE = '"format": "dbt2prefect-inventory"'
"""What the start of every inventory file holds: `write_inventory` overwrites only such files."""


def inventory_output_problem(path: Path, option: str = "--output") -> str | None:
    """Why `write_inventory` would refuse `path` (a file that is not an inventory), or None."""
    return overwrite_problem(
        Path(path), option, signature=INVENTORY_SIGNATURE, what="an inventory `dbt2prefect export` wrote"
    )


def write_inventory(inventory: Inventory, path: Path, *, option: str = "--output") -> Path:
    """Write the inventory atomically (temp file in the same folder, then os.replace).

    Raises:
        InventoryError: `path` is a file that is not an inventory (see `dbt2prefect.files.overwrite_problem`), or it
            cannot be written; nothing was written.
    """
    problem = inventory_output_problem(path, option)
    if problem is not None:
        raise InventoryError(problem)
    try:
        return write_text_atomic(Path(path), inventory.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        raise InventoryError(
            f"could not write inventory {path}: {exc.strerror or exc}; pick another --output"
        ) from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"


def _job_problem(raw: dict[str, Any]) -> str | None:
    """Why `raw` is not a usable job (field and reason), or None when it is."""
    try:
        Job.from_api(raw)
    except ValidationError as exc:
        return _first_error(exc)
    return None


def _check_jobs(raws: list[dict[str, Any]], path: Path) -> None:
    for index, raw in enumerate(raws):
        problem = _job_problem(raw)
        if problem is not None:
            raise InventoryError(f"inventory {path}: job #{index} (id {raw.get('id')}): {problem}")


_SUBSET_FILTERS = ("offset", "pk", "name__icontains", "environment_id", "triggers_schedule", "dbt_version__in")
"""Filters of GET /jobs/ that leave jobs of the project out, echoed in a saved response's `extra.filters`."""


def _check_complete(extra: Any, saved: int, path: Path) -> None:
    """Refuse a saved jobs list that is one page of more, or a filtered part of the account's jobs: a plan of it
    would leave the other jobs out without a word."""
    if not isinstance(extra, dict):
        return  # a bare response without `extra` says nothing about other pages
    pagination, filters = (
        {} if not isinstance(part, dict) else part for part in (extra.get("pagination"), extra.get("filters"))
    )
    total = pagination.get("total_count")
    fix = (
        "export every page with `dbt2prefect export --output <file>` (it reads all pages, the environments and "
        "the environment variables) and plan that file"
    )
    if isinstance(total, int) and not isinstance(total, bool) and total > saved:
        raise InventoryError(
            f"inventory {path} holds {saved} of the {total} jobs the response counts (extra.pagination."
            f"total_count): it is one page of a longer list; {fix}"
        )
    subset = {name: filters[name] for name in _SUBSET_FILTERS if filters.get(name) not in (None, 0, "0", "")}
    if subset:
        shown = ", ".join(f"{name}={value!r}" for name, value in subset.items())
        raise InventoryError(
            f"inventory {path} was saved with the filter(s) {shown} (extra.filters): it holds only part of the "
            f"account's jobs; {fix}"
        )


def check_account(inventory: Inventory, account_id: int, path: Path | str, tenant: str) -> None:
    """Refuse an inventory of another dbt Cloud account than the tenant's.

    Raises:
        InventoryError: naming both account ids and the file.
    """
    if inventory.account_id != account_id:
        raise InventoryError(
            f"inventory {path} holds jobs of dbt Cloud account {inventory.account_id}, but tenant {tenant} is "
            f"account {account_id} ([tenant.dbt_cloud] account_id): export the tenant's own account "
            "(`dbt2prefect export`), or name the settings of account "
            f"{inventory.account_id} with --tenant-file"
        )


def _from_jobs_list(doc: dict[str, Any], path: Path) -> Inventory:
    data = doc["data"]
    if not isinstance(data, list) or not all(isinstance(j, dict) for j in data):
        raise InventoryError(f"inventory {path}: 'data' must be a list of job objects")
    if not data:
        raise InventoryError(f"inventory {path}: the jobs list is empty; save a response that has jobs")
    _check_jobs(data, path)  # before reading ids from the jobs, so a bad id is reported, not a crash
    _check_complete(doc.get("extra"), len(data), path)
    jobs = [Job.from_api(j) for j in data]
    account_ids = {j.account_id for j in jobs}
    project_ids = {j.project_id for j in jobs}
    if len(account_ids) != 1:
        raise InventoryError(f"inventory {path}: jobs must all carry the same account_id")
    return Inventory(
        source="jobs_list_file",
        account_id=account_ids.pop(),
        project_id=project_ids.pop() if len(project_ids) == 1 else None,
        jobs=[InventoryJob(raw=j) for j in data],
    )


def load_inventory(path: Path | str) -> Inventory:
    """Read an inventory written by `export`, or a raw jobs list response saved from
    GET /api/v2/accounts/{id}/jobs/ (`{"status": ..., "data": [...], "extra": ...}`) holding every job.

    Raises:
        InventoryError: the file is missing, not JSON, neither shape, a job is malformed or appears twice, or a
            saved jobs list is one page of more (the message names the file, the job, and how to fix it).
    """
    file = Path(path)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InventoryError(f"inventory {file} does not exist; run `dbt2prefect export` first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InventoryError(f"inventory {file} is not readable JSON: {exc}") from None
    except RecursionError:
        raise InventoryError(f"inventory {file} is not readable JSON: it is nested too deeply") from None
    if (
        isinstance(doc, dict)
        and doc.get("format") == INVENTORY_FORMAT
        and doc.get("version", INVENTORY_VERSION) != INVENTORY_VERSION
    ):
        raise InventoryError(
            f"inventory {file} has version {doc.get('version')!r}; this toolkit reads version {INVENTORY_VERSION}: "
            "export again with this version of dbt2prefect, or upgrade it"
        )
    if isinstance(doc, dict) and doc.get("format") == INVENTORY_FORMAT:
        try:
            inventory = Inventory.model_validate(doc)
        except ValidationError as exc:
            raise InventoryError(f"inventory {file}: {_first_error(exc)}") from None
    elif isinstance(doc, dict) and "data" in doc and isinstance(doc.get("status"), dict):
        inventory = _from_jobs_list(doc, file)
    else:
        raise InventoryError(
            f"{file} is neither a dbt2prefect inventory (from `dbt2prefect export`) nor a jobs list response "
            "saved from GET /api/v2/accounts/{account_id}/jobs/ ({status, data: [...], extra})"
        )
    _check_jobs([item.raw for item in inventory.jobs], file)
    seen: dict[int, int] = {}
    for index, job in enumerate(inventory.job_models()):
        # Compared as the typed id: 123 and "123" are one job.
        if job.id in seen:
            raise InventoryError(
                f"inventory {file}: job #{index} has id {job.id}, like job #{seen[job.id]} (this one named "
                f"{job.name!r}); each dbt Cloud job appears once: export again (`dbt2prefect export`), or remove "
                "the duplicate"
            )
        seen[job.id] = index
    for key in inventory.environment_variables or {}:
        if not (key.isascii() and key.isdigit()):
            raise InventoryError(
                f"inventory {file}: environment_variables has the key {key!r}, which is not a dbt Cloud project id "
                "(a number): export again (`dbt2prefect export`), or fix the key"
            )
    for index, notification in enumerate(inventory.notifications):
        try:
            Notification.from_api(notification)
        except ValidationError as exc:
            raise InventoryError(
                f"inventory {file}: notification #{index} (id {notification.get('id')}): {_first_error(exc)}"
            ) from None
    try:
        inventory.environment_variable_models()
    except ValidationError as exc:
        raise InventoryError(f"inventory {file}: environment variables: {_first_error(exc)}") from None
    for index, env in enumerate(inventory.environments):
        try:
            Environment.from_api(env)
        except ValidationError as exc:
            raise InventoryError(
                f"inventory {file}: environment #{index} (id {env.get('id')}): {_first_error(exc)}"
            ) from None
    return inventory
