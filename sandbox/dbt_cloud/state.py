"""In-memory state of the sandbox dbt Cloud account: jobs, environments, runs and run artifacts.

Every method takes the one lock, so the HTTP handlers (event loop) and job-runner threads can share it.
Returned objects are deep copies: callers never hold references into the state.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.dbt_cloud.clock import hms, run_timestamp, utcnow
from sandbox.dbt_cloud.contract import (
    JOB_OPTIONAL_DEFAULTS,
    JOB_ORDER_FIELDS,
    OMITTED_FIELD_MODES,
    RUN_ORDER_FIELDS,
    STATUS_HUMANIZED,
    ApiError,
    int_param,
    list_param,
    order_key,
    page_params,
    validate_job_update,
)

PACKAGE_DIR = Path(__file__).resolve().parent
SEED_JOBS = PACKAGE_DIR / "seed_jobs.json"
SEED_ENVIRONMENTS = PACKAGE_DIR / "seed_environments.json"
SEED_NOTIFICATIONS = PACKAGE_DIR / "seed_notifications.json"
SEED_ENVIRONMENT_VARIABLES = PACKAGE_DIR / "seed_environment_variables.json"

_STATE_FILTERS = {"active": {1}, "1": {1}, "deleted": {2}, "2": {2}, "all": {1, 2}}


def read_list_file(path: Path, what: str) -> list[dict[str, Any]]:
    """The `data` list of a file saved from a list endpoint (or a bare list); for jobs, also the jobs of an
    inventory that `dbt2prefect export` wrote."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{what} file {path} is not readable JSON: {exc}") from None
    if what == "jobs" and isinstance(doc, dict) and doc.get("format") == "dbt2prefect-inventory":
        doc = {"data": [item.get("raw") if isinstance(item, dict) else item for item in doc.get("jobs") or []]}
    data = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(data, list) or not all(isinstance(item, dict) and "id" in item for item in data):
        raise ValueError(
            f"{what} file {path} must be a list response {{status, data: [...], extra}} as saved from the API"
        )
    return data


class SandboxState:
    """One dbt Cloud account in memory.

    Args:
        omitted_fields: what a job update does with writable fields its body leaves out: "keep" the stored
            values, or "reset" them to the spec's defaults (the live v2 behaviour is not documented).
    """

    def __init__(
        self,
        jobs: Iterable[dict[str, Any]],
        environments: Iterable[dict[str, Any]],
        omitted_fields: str = "keep",
    ) -> None:
        if omitted_fields not in OMITTED_FIELD_MODES:
            raise ValueError(f"omitted_fields must be one of {', '.join(OMITTED_FIELD_MODES)}, got {omitted_fields!r}")
        self.omitted_fields = omitted_fields
        self._lock = threading.RLock()
        self.jobs: dict[int, dict[str, Any]] = {int(j["id"]): copy.deepcopy(j) for j in jobs}
        if not self.jobs:
            raise ValueError("the sandbox needs at least one job to know its account id")
        first = next(iter(self.jobs.values()))
        self.account_id = int(first["account_id"])
        self.environments: dict[int, dict[str, Any]] = {int(e["id"]): copy.deepcopy(e) for e in environments}
        self._add_missing_environments()
        self.notifications: list[dict[str, Any]] = []
        self.environment_variables: dict[str, Any] = {"environment": {"environments": ["project"], "variables": {}}}
        self.runs: dict[int, dict[str, Any]] = {}
        self.artifact_dirs: dict[int, dict[int, Path]] = {}
        self._next_job_id = max(self.jobs) + 7
        self._next_run_id = 70403104500000
        self._next_step_id = 70403104900000
        self.completed_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with each run that reaches a final status (the webhooks' sender listens here)."""

    @classmethod
    def from_files(
        cls, jobs_file: Path | None = None, environments_file: Path | None = None, omitted_fields: str = "keep"
    ) -> SandboxState:
        """Seed from a jobs list-response file (default: the bundled seed) and an environments file."""
        jobs = read_list_file(jobs_file or SEED_JOBS, "jobs")
        envs_path = environments_file or (SEED_ENVIRONMENTS if jobs_file is None else None)
        envs = read_list_file(envs_path, "environments") if envs_path else []
        state = cls(jobs, envs, omitted_fields)
        if jobs_file is None or Path(jobs_file).resolve() == SEED_JOBS.resolve():
            # The bundled account also has notifications and environment variables.
            state.notifications = read_list_file(SEED_NOTIFICATIONS, "notifications")
            state.environment_variables = json.loads(SEED_ENVIRONMENT_VARIABLES.read_text(encoding="utf-8"))
        return state

    def _add_missing_environments(self) -> None:
        # A team's own jobs file has no environments: synthesise one per id, with the first job's target.
        for job in self.jobs.values():
            env_id = int(job["environment_id"])
            if env_id not in self.environments:
                target = (job.get("settings") or {}).get("target_name") or "default"
                self.environments[env_id] = {
                    "id": env_id,
                    "account_id": self.account_id,
                    "project_id": job["project_id"],
                    "name": f"Environment {env_id}",
                    "type": "deployment",
                    "deployment_type": None,
                    "dbt_version": "latest",
                    "use_custom_branch": False,
                    "custom_branch": None,
                    "state": 1,
                    "credentials": {"target_name": target, "threads": 4, "schema": "analytics"},
                }

    # ------------------------------------------------------------------------------------------------ jobs

    def check_account(self, account_id: int) -> None:
        if account_id != self.account_id:
            raise ApiError(404, f"Account {account_id} not found.")

    def list_jobs(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Filter, order and page the jobs; returns the page and the `extra` block."""
        limit, offset = page_params(params)
        state = params.get("state", "active")
        if state not in _STATE_FILTERS:
            raise ApiError(400, f"state must be one of active, deleted, all, 1, 2; got {state!r}.")
        field, descending = order_key(params.get("order_by"), JOB_ORDER_FIELDS, "id")
        project_id = int_param(params, "project_id")
        project_in = list_param(params, "project_id__in")
        environment_id = int_param(params, "environment_id")
        name_part = params.get("name__icontains", "").lower()
        pk = int_param(params, "pk")
        sched = params.get("triggers_schedule")
        with self._lock:
            rows = [
                j
                for j in self.jobs.values()
                if j.get("state", 1) in _STATE_FILTERS[state]
                and (project_id is None or j["project_id"] == project_id)
                and (project_in is None or j["project_id"] in [int(p) for p in project_in])
                and (environment_id is None or j["environment_id"] == environment_id)
                and (not name_part or name_part in j["name"].lower())
                and (pk is None or j["id"] == pk)
                and (sched is None or bool(j["triggers"].get("schedule")) == (sched.lower() == "true"))
            ]
            rows.sort(key=lambda j: (j.get(field) is None, j.get(field)), reverse=descending)
            page = copy.deepcopy(rows[offset : offset + limit])
        filters: dict[str, Any] = {"limit": limit, "offset": offset, "state": state, "account_id": self.account_id}
        for key in ("project_id", "environment_id", "name__icontains"):
            if key in params:
                filters[key] = params[key]
        extra = {
            "filters": filters,
            "order_by": params.get("order_by", "id"),
            "pagination": {"count": len(page), "total_count": len(rows)},
        }
        return page, extra

    def get_job(self, job_id: int) -> dict[str, Any]:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise ApiError(404, f"Job {job_id} not found.")
            return copy.deepcopy(job)

    def update_job(self, job_id: int, body: Any) -> dict[str, Any]:
        """Replace a job's writable fields (the API's POST /jobs/{id}/); `state: 2` deletes the job."""
        with self._lock:
            current = self.jobs.get(job_id)
            if current is None or current.get("state") == 2:
                raise ApiError(404, f"Job {job_id} not found.")
            validate_job_update(job_id, body, self.account_id)
            if body["environment_id"] not in self.environments:
                raise ApiError(400, f"Environment {body['environment_id']} does not exist.", "environment_id")
            base = dict(current)
            if self.omitted_fields == "reset":
                base.update(copy.deepcopy(JOB_OPTIONAL_DEFAULTS))
            updated = {**base, **copy.deepcopy(body)}
            # The platform derives scheduled vs other from the schedule trigger.
            if updated.get("job_type") in ("scheduled", "other", None):
                updated["job_type"] = "scheduled" if updated["triggers"].get("schedule") else "other"
            updated["updated_at"] = utcnow().isoformat()
            self.jobs[job_id] = updated
            return copy.deepcopy(updated)

    def add_generated_jobs(self, count: int, template_id: int | None = None) -> list[int]:
        """Add `count` copies of a job (default: the first active one) with new ids; for pagination tests."""
        with self._lock:
            template = (
                self.jobs[template_id] if template_id else next(j for j in self.jobs.values() if j.get("state", 1) == 1)
            )
            ids = []
            for n in range(count):
                job = copy.deepcopy(template)
                job["id"] = self._next_job_id
                job["name"] = f"Generated job {n + 1:04d}"
                minute = n % 60
                job["schedule"] = {
                    "cron": f"{minute} 3 * * *",
                    "date": {"type": "custom_cron", "cron": f"{minute} 3 * * *"},
                    "time": {"type": "every_hour", "interval": 1},
                }
                job["job_completion_trigger_condition"] = None
                self.jobs[job["id"]] = job
                ids.append(job["id"])
                self._next_job_id += 7
            return ids

    # ------------------------------------------------------------------------------------------------ environments

    def get_environment(self, environment_id: int, project_id: int | None = None) -> dict[str, Any]:
        with self._lock:
            env = self.environments.get(environment_id)
            if env is None or (project_id is not None and env["project_id"] != project_id):
                raise ApiError(404, f"Environment {environment_id} not found.")
            return copy.deepcopy(env)

    # ------------------------------------------------------------------------------------ notifications, env vars

    def list_notifications(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Page the account's notification settings (v2 `notifications/`, `limit`/`offset`)."""
        limit, offset = page_params(params)
        with self._lock:
            rows = sorted(self.notifications, key=lambda n: n["id"])
            page = copy.deepcopy(rows[offset : offset + limit])
        extra = {"filters": {"limit": limit, "offset": offset}, "order_by": "id"}
        extra["pagination"] = {"count": len(page), "total_count": len(rows)}
        return page, extra

    def project_environment_variables(self, project_id: int) -> dict[str, Any]:
        """v3 `environment-variables/environment/`: project defaults and per-environment values by name."""
        self._check_project(project_id)
        with self._lock:
            return copy.deepcopy(self.environment_variables["environment"])

    def job_environment_variables(self, project_id: int, job_id: int | None) -> dict[str, Any]:
        """v3 `environment-variables/job/?job_definition_id=`: the job's overrides beside the inherited values."""
        self._check_project(project_id)
        with self._lock:
            if job_id is None or job_id not in self.jobs:
                raise ApiError(404, f"Job {job_id} not found.")
            found = self.environment_variables.get("jobs", {}).get(str(job_id))
            return copy.deepcopy(found or {"environments": ["project", "job"], "variables": {}})

    def run_environment(self, job_id: int) -> dict[str, str]:
        """The variables a run of the job gets, as dbt Cloud resolves them (project < environment < job).

        Secrets are left out: the seed holds them masked, as the API returns them, and dbt reads secrets only in
        profiles.yml and packages.yml, which the sandbox writes itself.
        """
        from migration.dbt_cloud.models import EnvironmentVariables
        from migration.env_vars import is_secret

        with self._lock:
            job = self.jobs[job_id]
            environment = self.environments.get(int(job["environment_id"]), {}).get("name")
            project = EnvironmentVariables.from_api(self.environment_variables["environment"])
            override = self.environment_variables.get("jobs", {}).get(str(job_id))
        own = EnvironmentVariables.from_api(override) if override is not None else None
        return {k: v for k, v in project.resolve(environment, own).items() if not is_secret(k)}

    def _check_project(self, project_id: int) -> None:
        with self._lock:
            if all(j["project_id"] != project_id for j in self.jobs.values()):
                raise ApiError(404, f"Project {project_id} not found.")

    # ------------------------------------------------------------------------------------------------ runs

    def continue_run_ids_after(self, used: Iterable[int]) -> None:
        """Number new runs after `used` (runs of an earlier server on the same artifacts folder)."""
        with self._lock:
            self._next_run_id = max([self._next_run_id, *(run_id + 11 for run_id in used)])

    def create_run(self, job_id: int, cause: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue a run of a job (status 1) and return it."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None or job.get("state") == 2:
                raise ApiError(404, f"Job {job_id} not found.")
            run_id = self._next_run_id
            self._next_run_id += 11
            now = utcnow()
            run = {
                "id": run_id,
                "trigger_id": run_id + 3,
                "account_id": self.account_id,
                "environment_id": job["environment_id"],
                "project_id": job["project_id"],
                "job_definition_id": job_id,
                "job_id": job_id,
                "status": 1,
                "status_humanized": STATUS_HUMANIZED[1],
                "status_message": None,
                "dbt_version": job.get("dbt_version") or "versionless",
                "git_branch": "main",
                "git_sha": None,
                "created_at": run_timestamp(now),
                "updated_at": run_timestamp(now),
                "dequeued_at": None,
                "started_at": None,
                "finished_at": None,
                "duration": "00:00:00",
                "run_duration": "00:00:00",
                "in_progress": True,
                "is_complete": False,
                "is_success": False,
                "is_error": False,
                "is_cancelled": False,
                "has_docs_generated": False,
                "has_sources_generated": False,
                "artifacts_saved": False,
                "href": f"/deploy/{self.account_id}/projects/{job['project_id']}/runs/{run_id}/",
                "trigger": {
                    "id": run_id + 3,
                    "cause": cause,
                    "cause_category": "api",
                    "job_definition_id": job_id,
                    **{k: v for k, v in (overrides or {}).items() if k.endswith("_override")},
                },
                "run_steps": [],
            }
            self.runs[run_id] = run
            return self._public_run(run, include_steps=False)

    def add_run_record(self, job_id: int, status: int, *, cause: str = "recorded") -> dict[str, Any]:
        """Record a finished run WITHOUT steps or artifacts (history only; for list/latest-run tests)."""
        run = self.create_run(job_id, cause)
        self.update_run(run["id"], status=status, finished=True)
        return self.get_run(run["id"], include_steps=False)

    def update_run(self, run_id: int, *, status: int | None = None, finished: bool = False, **fields: Any) -> None:
        with self._lock:
            self._update_run(run_id, status, finished, fields)
            completed = self._public_run(self.runs[run_id], include_steps=False) if finished else None
        if completed is not None:
            for listener in list(self.completed_listeners):
                listener(completed)

    def _update_run(self, run_id: int, status: int | None, finished: bool, fields: dict[str, Any]) -> None:
        with self._lock:
            run = self.runs[run_id]
            now = utcnow()
            if status is not None:
                run["status"] = status
                run["status_humanized"] = STATUS_HUMANIZED[status]
                if status == 3 and run["started_at"] is None:
                    run["dequeued_at"] = run["started_at"] = run_timestamp(now)
            run.update(fields)
            run["updated_at"] = run_timestamp(now)
            if finished:
                run["finished_at"] = run_timestamp(now)
                start = datetime.fromisoformat(run["started_at"] or run["created_at"])
                run["duration"] = run["run_duration"] = hms((now - start).total_seconds())
                run["in_progress"] = False
                run["is_complete"] = True
                run["is_success"] = run["status"] == 10
                run["is_error"] = run["status"] == 20
                run["is_cancelled"] = run["status"] == 30

    def add_run_step(self, run_id: int, step: dict[str, Any], artifact_dir: Path | None) -> None:
        """Append a finished step (and where its artifacts are kept)."""
        with self._lock:
            step = {"id": self._next_step_id, "run_id": run_id, "account_id": self.account_id, **step}
            step["status_humanized"] = STATUS_HUMANIZED.get(step["status"], str(step["status"]))
            self._next_step_id += 1
            self.runs[run_id]["run_steps"].append(step)
            if artifact_dir is not None:
                self.artifact_dirs.setdefault(run_id, {})[step["index"]] = artifact_dir

    def _public_run(self, run: dict[str, Any], include_steps: bool) -> dict[str, Any]:
        out = copy.deepcopy(run)
        if not include_steps:
            out.pop("run_steps")
        return out

    def get_run(self, run_id: int, include_steps: bool) -> dict[str, Any]:
        with self._lock:
            run = self.runs.get(run_id)
            if run is None:
                raise ApiError(404, f"Run {run_id} not found.")
            return self._public_run(run, include_steps)

    def list_runs(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        limit, offset = page_params(params)
        field, descending = order_key(params.get("order_by"), RUN_ORDER_FIELDS, "id")
        job_id = int_param(params, "job_definition_id")
        env_id = int_param(params, "environment_id")
        status = int_param(params, "status")
        status_in = list_param(params, "status__in")
        related = list_param(params, "include_related") or []
        with self._lock:
            rows = [
                r
                for r in self.runs.values()
                if (job_id is None or r["job_definition_id"] == job_id)
                and (env_id is None or r["environment_id"] == env_id)
                and (status is None or r["status"] == status)
                and (status_in is None or r["status"] in [int(s) for s in status_in])
            ]
            rows.sort(key=lambda r: (r.get(field) is None, r.get(field) or ""), reverse=descending)
            page = [self._public_run(r, "run_steps" in related) for r in rows[offset : offset + limit]]
        extra = {
            "filters": {"limit": limit, "offset": offset, "account_id": self.account_id},
            "order_by": params.get("order_by", "id"),
            "pagination": {"count": len(page), "total_count": len(rows)},
        }
        return page, extra

    # ------------------------------------------------------------------------------------------------ artifacts

    def _artifact_step_dir(self, run_id: int, step: int | None) -> Path:
        with self._lock:
            if run_id not in self.runs:
                raise ApiError(404, f"Run {run_id} not found.")
            dirs = self.artifact_dirs.get(run_id, {})
            steps = self.runs[run_id]["run_steps"]
            finished = self.runs[run_id]["is_complete"]
        if not finished:
            # The API describes artifacts of completed runs only.
            raise ApiError(404, f"Run {run_id} has not finished; its artifacts are available once it completes.")
        if step is None:
            # Without `step` the API serves the LAST step's files (the docs step when generate_docs is on).
            if not steps:
                raise ApiError(404, f"Run {run_id} has no artifacts.")
            step = max(s["index"] for s in steps)
        directory = dirs.get(step)
        status = next((s["status"] for s in steps if s["index"] == step), None)
        if directory is None or status not in (10, 20, 30):
            raise ApiError(404, f"Run {run_id} step {step} has no artifacts.")
        return directory

    def list_artifacts(self, run_id: int, step: int | None) -> list[str]:
        directory = self._artifact_step_dir(run_id, step)
        return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())

    def artifact_path(self, run_id: int, path: str, step: int | None) -> Path:
        directory = self._artifact_step_dir(run_id, step).resolve()
        candidate = (directory / path).resolve()
        if directory not in candidate.parents or not candidate.is_file():
            raise ApiError(404, f"Artifact {path} not found for run {run_id}.")
        return candidate

    def snapshot(self, fn: Callable[[SandboxState], Any]) -> Any:
        """Run `fn` under the lock (for consistent multi-field reads)."""
        with self._lock:
            return fn(self)
