"""A small client for the dbt Cloud Administrative API: v2 for jobs, runs and artifacts, v3 for environments.

One `httpx.Client` (thread-safe, so export may share it across a thread pool), one `_request()` that retries
what can succeed later and turns every failure into a `DbtCloudApiError` subclass, and one pagination
generator driven by `extra.pagination.total_count`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from dbt2prefect.dbt_cloud import RunStatus
from migration.dbt_cloud.auth import TokenAuth
from migration.dbt_cloud.errors import (
    DbtCloudApiError,
    DbtCloudAuthError,
    DbtCloudBadRequestError,
    DbtCloudConfigError,
    DbtCloudNotFoundError,
    DbtCloudResponseError,
    DbtCloudRetriesExhaustedError,
)
from migration.dbt_cloud.models import (
    Environment,
    EnvironmentVariables,
    Job,
    JobState,
    Notification,
    Run,
)
from migration.dbt_cloud.payloads import as_job, job_update_payload
from migration.dbt_cloud.settings import RetryPolicy, is_dbt_cloud_host, normalize_host

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

PAGE_LIMIT = 100
"""dbt Cloud's maximum page size on multi-tenant hosts (a larger limit is a 400)."""

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth retrying (terraform-provider-dbtcloud retries the same set)."""

JOB_STATE_FILTERS = ("active", "deleted", "all")

MAX_REDIRECTS = 3


class DbtCloudClient:
    """Administrative API client for one account.

    Args:
        host: base URL or host name (see `normalize_host`).
        account_id: the dbt Cloud account id.
        token: the API token (service token or PAT); it travels only in the Authorization header.
        token_source: where the token came from, named in 401 messages (e.g. "environment variable X").
        timeout: per-request timeout in seconds.
        retry: retry limits.
        transport: an httpx transport (tests inject faults with `httpx.MockTransport`).
        page_size: page size for list calls (at most 100 on multi-tenant hosts).
        sleep: the wait function (tests may record waits).
    """

    def __init__(
        self,
        host: str,
        account_id: int,
        token: SecretStr | str,
        *,
        token_source: str = "the configured token",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        page_size: int = PAGE_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if account_id <= 0:
            raise DbtCloudConfigError(
                f"dbt Cloud account id {account_id} is invalid; set [tenant.dbt_cloud] account_id or --account-id"
            )
        if not 1 <= page_size <= PAGE_LIMIT:
            raise DbtCloudConfigError(f"page_size must be between 1 and {PAGE_LIMIT}, got {page_size}")
        self.host = normalize_host(host)
        self.account_id = account_id
        self.token_source = token_source
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self._sleep = sleep
        self._random = random.Random()
        self._http = httpx.Client(
            base_url=self.host,
            auth=TokenAuth(token, source=token_source),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "dbt2prefect"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"DbtCloudClient(host={self.host!r}, account_id={self.account_id})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> DbtCloudClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------- transport

    def _v2(self, path: str) -> str:
        return f"/api/v2/accounts/{self.account_id}/{path.lstrip('/')}"

    def _v3(self, path: str) -> str:
        return f"/api/v3/accounts/{self.account_id}/{path.lstrip('/')}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        """Send one request with retries and return the 2xx response.

        Args:
            idempotent: False for a request that must not be sent twice (starting a run): it is retried only
                when the server certainly did not act on it (429, or a connection that was never made).

        Raises:
            DbtCloudAuthError, DbtCloudNotFoundError, DbtCloudBadRequestError: a 4xx (never retried).
            DbtCloudConfigError: a redirect to a host that is not dbt Cloud.
            DbtCloudRetriesExhaustedError: 429/5xx/connection errors past the retry limits.
        """
        started = time.monotonic()
        what = f"{method} {path}"
        failures = 0  # 5xx and connection errors
        rate_limited = 0
        waited_on_429 = 0.0
        while True:
            try:
                response = self._send(method, path, params, json_body)
            except httpx.TransportError as exc:
                # Connection refused/reset, timeouts, a server closing the socket without answering.
                never_sent = isinstance(exc, httpx.ConnectError)
                if not idempotent and not never_sent:
                    raise self._maybe_sent(what, f"connection error ({type(exc).__name__})") from None
                failures += 1
                last = _Failure("connection", f"connection error ({type(exc).__name__})")
                wait = self._jittered(self.retry.backoff(failures))
            else:
                if response.is_success:
                    return response
                status = response.status_code
                if status not in RETRY_STATUS:
                    raise self._client_error(method, path, response)
                if status == 429:
                    rate_limited += 1
                    last = _Failure("rate_limit", "HTTP 429")
                    wait = self._retry_wait(response, rate_limited)
                else:
                    if not idempotent:
                        raise self._maybe_sent(what, f"HTTP {status}")
                    failures += 1
                    last = _Failure("server", f"HTTP {status}")
                    wait = self._retry_wait(response, failures)
            elapsed = time.monotonic() - started
            if last.kind == "rate_limit":
                budget_left = self.retry.rate_limit_wait - waited_on_429
                out_of_budget = budget_left <= 0
                wait = min(wait, max(0.0, budget_left))
            else:
                out_of_budget = failures >= self.retry.max_attempts
            if out_of_budget or elapsed + wait > self.retry.deadline:
                raise self._exhausted(what, failures + rate_limited, elapsed, waited_on_429, last)
            log.warning("dbt Cloud %s: %s; retry in %.1fs", what, last.reason, wait)
            self._sleep(wait)
            if last.kind == "rate_limit":
                waited_on_429 += wait

    def _send(
        self, method: str, path: str, params: dict[str, Any] | None, json_body: dict[str, Any] | None
    ) -> httpx.Response:
        """One request; redirects are followed only to dbt Cloud hosts (the token goes where the request goes)."""
        url: str = path
        for _ in range(MAX_REDIRECTS + 1):
            response = self._http.request(method, url, params=params, json=json_body)
            if not response.is_redirect:
                return response
            location = response.headers.get("Location", "")
            target = str(response.request.url.join(location))
            keeps_method = response.status_code in (307, 308) or method in ("GET", "HEAD")
            if not is_dbt_cloud_host(target, self.host) or not keeps_method:
                new_host = f"{urlsplit(target).scheme}://{urlsplit(target).netloc}"
                raise DbtCloudConfigError(
                    f"dbt Cloud {method} {path} was redirected ({response.status_code}) to {new_host}, "
                    f"which {'is not a dbt Cloud host' if keeps_method else 'would turn the POST into a GET'}; "
                    f"the token is not sent there. If {new_host} is your account's dbt Cloud host, set "
                    "[tenant.dbt_cloud] host (or --host) to it"
                )
            log.warning("dbt Cloud %s redirected to %s; set the host setting to it to skip the redirect", path, target)
            url, params = target, None  # the Location carries the query
        raise DbtCloudResponseError(f"dbt Cloud {method} {path}: more than {MAX_REDIRECTS} redirects")

    def _maybe_sent(self, what: str, reason: str) -> DbtCloudRetriesExhaustedError:
        return DbtCloudRetriesExhaustedError(
            f"dbt Cloud {what} failed with {reason} after the request was sent, so dbt Cloud may have acted on "
            "it; not retried, because starting a run twice starts two runs. Check the job's runs in dbt Cloud "
            "before trying again"
        )

    def _exhausted(
        self, what: str, attempts: int, elapsed: float, waited_on_429: float, last: _Failure
    ) -> DbtCloudRetriesExhaustedError:
        if last.kind == "connection":
            cause = (
                f"cannot reach {self.host}; check the host setting ([tenant.dbt_cloud] host or --host), "
                "the network and any proxy"
            )
        elif last.kind == "rate_limit":
            cause = (
                f"dbt Cloud kept answering 429 (rate-limited; 5,000 requests/min per account) for "
                f"{waited_on_429 / 60:.1f} min of waiting; retry later, or raise [tenant.dbt_cloud] "
                f"rate_limit_minutes (now {self.retry.rate_limit_wait / 60:g})"
            )
        else:
            cause = "dbt Cloud is unavailable (server errors); retry later or raise the retry limits"
        return DbtCloudRetriesExhaustedError(
            f"dbt Cloud {what} failed after {attempts} attempt(s) in {elapsed:.1f}s, last: {last.reason}; {cause}"
        )

    def _jittered(self, seconds: float) -> float:
        # Jitter keeps parallel workers (export's thread pool) from retrying in lockstep.
        return self._random.uniform(seconds / 2, seconds) if seconds > 0 else 0.0

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After") or response.headers.get("x-rate-limit-retry-after-seconds")
        if header is not None:
            try:
                return min(self.retry.max_retry_after, max(0.0, float(header)))
            except ValueError:
                pass  # an HTTP-date Retry-After: fall back to backoff
        # No usable header (the documented case outside SCIM): exponential backoff with jitter.
        return self._jittered(self.retry.backoff(attempt))

    def _client_error(self, method: str, path: str, response: httpx.Response) -> DbtCloudApiError:
        status = response.status_code
        what = f"dbt Cloud {method} {path} returned {status}"
        if status in (401, 403):
            return DbtCloudAuthError(
                f"{what}: token or host wrong; check {self.token_source} and the host setting "
                f"(now {self.host}); the token needs access to account {self.account_id}",
                status_code=status,
            )
        if status == 404:
            return DbtCloudNotFoundError(
                f"{what}: id or account wrong (account {self.account_id} on {self.host}); dbt Cloud also "
                "answers 404 for objects the token cannot see",
                status_code=status,
            )
        return DbtCloudBadRequestError(f"{what}: {api_reason(response)}", status_code=status)

    def _data(self, response: httpx.Response, method: str, path: str) -> Any:
        body = self._json(response, method, path)
        if not isinstance(body, dict) or "data" not in body:
            raise DbtCloudResponseError(f"dbt Cloud {method} {path}: response has no 'data' envelope")
        return body["data"]

    @staticmethod
    def _json(response: httpx.Response, method: str, path: str) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DbtCloudResponseError(
                f"dbt Cloud {method} {path} returned {response.status_code} with a body that is not JSON; "
                "check that the host setting points at dbt Cloud"
            ) from None

    def _get_data(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._data(self._request("GET", path, params=params), "GET", path)

    def _paginate(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Yield every object of a list endpoint, page by page, until `total_count` is reached."""
        offset = 0
        while True:
            page_params = {**params, "limit": self.page_size, "offset": offset}
            response = self._request("GET", path, params=page_params)
            body = self._json(response, "GET", path)
            try:
                items = body["data"]
                pagination = body["extra"]["pagination"]
                count = int(pagination["count"])
                total = int(pagination["total_count"])
            except (KeyError, TypeError, ValueError):
                raise DbtCloudResponseError(
                    f"dbt Cloud GET {path}: list response lacks data or extra.pagination.count/total_count"
                ) from None
            if not isinstance(items, list):
                raise DbtCloudResponseError(f"dbt Cloud GET {path}: 'data' is not a list")
            yield from items
            # Objects can be deleted between calls, so an empty page also ends the loop.
            offset += count
            if count == 0 or offset >= total:
                return

    # ----------------------------------------------------------------------------------------- jobs

    def iter_job_dicts(
        self,
        *,
        project_id: int | None = None,
        environment_id: int | None = None,
        state: str = "active",
        order_by: str = "id",
    ) -> Iterator[dict[str, Any]]:
        """Yield every job as the API returned it (raw dicts, for audit files and rollback records).

        Args:
            state: "active" (the API's default), "deleted" or "all".
            order_by: a stable order so pages neither skip nor repeat jobs.
        """
        if state not in JOB_STATE_FILTERS:
            raise DbtCloudConfigError(f"job state filter {state!r} is not one of {', '.join(JOB_STATE_FILTERS)}")
        params: dict[str, Any] = {"state": state, "order_by": order_by}
        if project_id is not None:
            params["project_id"] = project_id
        if environment_id is not None:
            params["environment_id"] = environment_id
        yield from self._paginate(self._v2("jobs/"), params)

    def iter_jobs(
        self,
        *,
        project_id: int | None = None,
        environment_id: int | None = None,
        state: str = "active",
    ) -> Iterator[Job]:
        """Yield every job as a typed `Job` (see `iter_job_dicts` for the filters)."""
        for data in self.iter_job_dicts(project_id=project_id, environment_id=environment_id, state=state):
            yield self._model(Job, data, "job")

    def get_job_dict(self, job_id: int) -> dict[str, Any]:
        """One job as the API returned it (the rollback record before an update)."""
        data = self._get_data(self._v2(f"jobs/{job_id}/"))
        if not isinstance(data, dict):
            raise DbtCloudResponseError(f"dbt Cloud GET job {job_id}: 'data' is not an object")
        return data

    def get_job(self, job_id: int) -> Job:
        """One job as a typed `Job`."""
        return self._model(Job, self.get_job_dict(job_id), "job")

    def update_job(self, job: Job | dict[str, Any]) -> Job:
        """Replace a job's definition (POST with the full body; the API has no PATCH).

        The body is built from writable fields only (see `payloads.job_update_payload`): it never carries
        `triggers.custom_branch_only` and refuses state 2 (that deletes the job).

        Returns:
            The job as the API stored it.
        """
        typed = as_job(job)
        payload = job_update_payload(typed)
        path = self._v2(f"jobs/{typed.id}/")
        data = self._data(self._request("POST", path, json_body=payload), "POST", path)
        if not isinstance(data, dict):
            raise DbtCloudResponseError(f"dbt Cloud POST {path}: 'data' is not an object")
        return self._model(Job, data, "job")

    def trigger_job_run(self, job_id: int, cause: str, **overrides: Any) -> Run:
        """Start a run of a job (`POST /jobs/{id}/run/`); overrides are the API's `*_override` fields.

        Not retried once sent (a retry could start a second run); a 429 or a refused connection is.
        """
        path = self._v2(f"jobs/{job_id}/run/")
        body = {"cause": cause, **overrides}
        data = self._data(self._request("POST", path, json_body=body, idempotent=False), "POST", path)
        return self._model(Run, data, "run")

    # ----------------------------------------------------------------------------------------- runs

    def list_runs(
        self,
        *,
        job_definition_id: int | None = None,
        environment_id: int | None = None,
        status: RunStatus | None = None,
        order_by: str = "-id",
        limit: int = PAGE_LIMIT,
    ) -> list[Run]:
        """One page of runs, newest first by default (the API's own default is oldest first)."""
        if not 1 <= limit <= PAGE_LIMIT:
            raise DbtCloudConfigError(f"runs limit must be between 1 and {PAGE_LIMIT}, got {limit}")
        params: dict[str, Any] = {"order_by": order_by, "limit": limit}
        if job_definition_id is not None:
            params["job_definition_id"] = job_definition_id
        if environment_id is not None:
            params["environment_id"] = environment_id
        if status is not None:
            params["status"] = int(status)
        data = self._get_data(self._v2("runs/"), params)
        if not isinstance(data, list):
            raise DbtCloudResponseError("dbt Cloud GET runs: 'data' is not a list")
        return [self._model(Run, item, "run") for item in data]

    def iter_completed_runs(self, *, newest_first: bool = True) -> Iterator[Run]:
        """Every completed run of the account (success, error, cancelled), by finish time, newest first by default.

        Pages are read as the caller iterates, so a caller that stops at the first run older than it needs reads
        only the pages up to it. A run that completes while the pages are read can shift a page by one: callers
        that must see every run read again later with an overlap (see `migration.shadow_poll`).
        """
        completed = [int(RunStatus.SUCCESS), int(RunStatus.ERROR), int(RunStatus.CANCELLED)]
        params = {"status__in": json.dumps(completed), "order_by": "-finished_at" if newest_first else "finished_at"}
        for item in self._paginate(self._v2("runs/"), params):
            yield self._model(Run, item, "run")

    def latest_successful_run(self, job_id: int) -> Run | None:
        """The newest successful run of a job, or None when it never succeeded."""
        runs = self.list_runs(job_definition_id=job_id, status=RunStatus.SUCCESS, order_by="-id", limit=1)
        return runs[0] if runs else None

    def get_run(self, run_id: int, include_related: Sequence[str] = ("run_steps",)) -> Run:
        """One run; `include_related=["run_steps"]` adds its steps (index, name, status, logs)."""
        params = {"include_related": json.dumps(list(include_related))} if include_related else None
        data = self._get_data(self._v2(f"runs/{run_id}/"), params)
        return self._model(Run, data, "run")

    def list_run_artifacts(self, run_id: int, step: int | None = None) -> list[str]:
        """Artifact paths of a run (of step `step`, or of the last step when None)."""
        params = {"step": step} if step is not None else None
        data = self._get_data(self._v2(f"runs/{run_id}/artifacts/"), params)
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            raise DbtCloudResponseError(f"dbt Cloud GET run {run_id} artifacts: 'data' is not a list of paths")
        return list(data)

    def get_run_artifact_bytes(self, run_id: int, path: str, *, step: int | None) -> bytes:
        """The raw bytes of one artifact file.

        Args:
            step: the run step index. Pass it: without it the API serves the LAST step's file, which for a
                job with "generate docs" is the docs step's no-op run_results.json. `None` is accepted only
                to reproduce that default on purpose.
        """
        params = {"step": step} if step is not None else None
        return self._request("GET", self._v2(f"runs/{run_id}/artifacts/{path.lstrip('/')}"), params=params).content

    def get_run_artifact(self, run_id: int, path: str, *, step: int | None) -> Any:
        """One JSON artifact (manifest.json, run_results.json, catalog.json, sources.json), parsed."""
        raw = self.get_run_artifact_bytes(run_id, path, step=step)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise DbtCloudResponseError(f"dbt Cloud artifact {path} of run {run_id} is not JSON") from None

    # ----------------------------------------------------------------------------------------- environments

    def get_environment_dict(self, environment_id: int, project_id: int | None = None) -> dict[str, Any]:
        """One environment (v3) with its credentials (target name, schema), as the API returned it."""
        scope = f"projects/{project_id}/" if project_id is not None else ""
        path = self._v3(f"{scope}environments/{environment_id}/")
        data = self._get_data(path, {"include_related": "credentials"})
        if not isinstance(data, dict):
            raise DbtCloudResponseError(f"dbt Cloud GET {path}: 'data' is not an object")
        return data

    def get_environment(self, environment_id: int, project_id: int | None = None) -> Environment:
        """One environment as a typed `Environment`."""
        return self._model(Environment, self.get_environment_dict(environment_id, project_id), "environment")

    # ---------------------------------------------------------------------- notifications and env vars

    def iter_notifications(self) -> Iterator[Notification]:
        """Every notification setting of the account (v2 `notifications/`, paginated)."""
        for item in self._paginate(self._v2("notifications/"), {}):
            yield self._model(Notification, item, "notification")

    def get_environment_variables(self, project_id: int) -> EnvironmentVariables:
        """The project's environment variables: defaults and per-environment values (v3; secrets masked)."""
        path = self._v3(f"projects/{project_id}/environment-variables/environment/")
        return self._model(EnvironmentVariables, self._get_data(path), "environment variables")

    def get_job_environment_variables(self, project_id: int, job_id: int) -> EnvironmentVariables:
        """One job's environment variable overrides, beside the values it inherits (v3; secrets masked)."""
        path = self._v3(f"projects/{project_id}/environment-variables/job/")
        data = self._get_data(path, {"job_definition_id": job_id})
        return self._model(EnvironmentVariables, data, "job environment variables")

    # ----------------------------------------------------------------------------------------- helpers

    @staticmethod
    def _model(model: type[M], data: Any, what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            ident = data.get("id") if isinstance(data, dict) else None
            raise DbtCloudResponseError(
                f"dbt Cloud {what} {ident}: field {loc!r} {first['msg']}; the API shape changed"
            ) from None


def _reasons(data: Any, prefix: str = "") -> list[str]:
    """`data` of a rejection, flattened to 'field: reason' lines (`{"triggers": "..."}`, nested or listed)."""
    if isinstance(data, dict):
        out: list[str] = []
        for key, value in data.items():
            out.extend(_reasons(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}"))
        return out
    if isinstance(data, list):
        return [line for item in data for line in _reasons(item, prefix)]
    if data is None or data == "":
        return []
    return [f"{prefix}: {data}" if prefix else str(data)]


def api_reason(response: httpx.Response) -> str:
    """The API's own reason for a rejected request.

    The live API keeps a generic text in `status.user_message` and puts the reason in `data`, keyed by field
    (`{"triggers": "Additional properties are not allowed ('custom_branch_only' was unexpected)"}`), sometimes
    with an `error_code`; all of them are kept, reasons first.
    """
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300] or response.reason_phrase
    if not isinstance(body, dict):
        return json.dumps(body)[:300]
    raw_status = body.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    parts = _reasons(body.get("data"))
    parts += [str(status[k]) for k in ("user_message", "developer_message") if status.get(k)]
    code = body.get("error_code", status.get("error_code"))
    if code is not None:
        parts.append(f"error_code {code}")
    return "; ".join(parts)[:2000] if parts else json.dumps(body)[:300]


@dataclass(frozen=True)
class _Failure:
    """Why the last attempt failed: kind (connection, rate_limit, server) and a short reason."""

    kind: str
    reason: str


__all__ = ["PAGE_LIMIT", "DbtCloudClient", "JobState", "RetryPolicy"]
