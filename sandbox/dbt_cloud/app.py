"""The sandbox dbt Cloud API as an ASGI app (Starlette): the endpoints the migration client uses.

`create_app()` returns a `SandboxApp`: an ASGI callable that also exposes its state, fault injector and a
synchronous `run_job()` for tests and the demo.
"""

from __future__ import annotations

import json
import logging
import secrets
import tempfile
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from sandbox.dbt_cloud.contract import ApiError, envelope, error_body, int_param, list_param
from sandbox.dbt_cloud.faults import FaultInjector, FaultSettings
from sandbox.dbt_cloud.runner import JobRunner, StepResult
from sandbox.dbt_cloud.state import SandboxState
from sandbox.dbt_cloud.webhooks import Webhooks
from sandbox.warehouse import RAW_DB

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]


def new_token() -> str:
    """A random service-token-like string for one sandbox instance."""
    return "dbtc_" + secrets.token_urlsafe(24)


class SandboxApp:
    """One sandbox account: state, job runner, faults, and the ASGI app serving them.

    Args:
        state: the account's jobs and environments.
        token: the only token the server accepts (`Token <t>` or `Bearer <t>`).
        faults: initial fault settings.
        project_dir: dbt project run by jobs (default: the tenant's, read when the first run starts).
        warehouse_base: folder of the DuckDB files (default: `sandbox.warehouse.warehouse_dir()`).
        artifacts_dir: where run artifacts are kept (default: a temp dir removed by `close()`).
        run_workers: concurrent job runs. 1 by default: runs of the same target share a DuckDB file, which
            allows one writer, and a one-slot account is also dbt Cloud's smallest plan.
        raw_catalog: alias of the raw database on every target (None: not attached; see `JobRunner`).

    The state's `omitted_fields` ("keep" or "reset") says what a job update does with writable fields the body
    leaves out; the live API's behaviour is not documented, so tests run both ways.
    """

    def __init__(
        self,
        state: SandboxState,
        token: str | None = None,
        faults: FaultSettings | None = None,
        project_dir: Path | None = None,
        warehouse_base: Path | None = None,
        artifacts_dir: Path | None = None,
        run_workers: int = 1,
        raw_catalog: str | None = RAW_DB,
    ) -> None:
        self.state = state
        self._raw_catalog = raw_catalog
        self.token = token or new_token()
        self._project_dir = project_dir
        self._warehouse_base = warehouse_base
        self._tmp = None if artifacts_dir else tempfile.TemporaryDirectory(prefix="dbt-cloud-sandbox-artifacts-")
        self.artifacts_dir = artifacts_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        # A restarted server keeps numbering after the runs already in its folder, never over their artifacts.
        state.continue_run_ids_after(int(p.name) for p in self.artifacts_dir.glob("[0-9]*") if p.name.isdigit())
        self._executor = ThreadPoolExecutor(max_workers=run_workers, thread_name_prefix="sandbox-run")
        self._runner: JobRunner | None = None
        self._runner_lock = threading.Lock()
        self.futures: dict[int, Future[dict[str, Any]]] = {}
        self.webhooks = Webhooks(state.account_id)
        state.completed_listeners.append(self.webhooks.run_completed)
        self.faults = FaultInjector(self._starlette(), faults)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.faults(scope, receive, send)

    def close(self) -> None:
        """Wait for running jobs, then remove the temporary artifacts folder."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._tmp is not None:
            self._tmp.cleanup()

    # ------------------------------------------------------------------------------------------------ runs

    @property
    def runner(self) -> JobRunner:
        with self._runner_lock:
            if self._runner is None:
                project_dir = self._project_dir
                if project_dir is None:
                    from dbt2prefect.tenant import load_tenant

                    project_dir = load_tenant().project_dir
                self._runner = JobRunner(
                    project_dir, self.artifacts_dir, self._warehouse_base, raw_catalog=self._raw_catalog
                )
            return self._runner

    def start_run(self, job_id: int, cause: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """Queue a run and execute it on the run pool; returns the queued run."""
        run = self.state.create_run(job_id, cause, overrides)
        self.futures[run["id"]] = self._executor.submit(self._execute, run["id"], job_id, overrides)
        return run

    def run_job(self, job_id: int, cause: str = "Run by the sandbox API", **overrides: Any) -> dict[str, Any]:
        """Run a job synchronously in this thread; returns the finished run with its steps."""
        run = self.state.create_run(job_id, cause, overrides)
        return self._execute(run["id"], job_id, overrides)

    def _execute(self, run_id: int, job_id: int, overrides: dict[str, Any] | None) -> dict[str, Any]:
        job = self.state.get_job(job_id)
        self.state.update_run(run_id, status=3)
        flags = {"docs": False, "sources": False}

        def on_step(step: StepResult) -> None:
            record = {k: v for k, v in asdict(step).items() if k not in ("artifact_dir", "dbt_command")}
            record["run_step_command"] = {"dbt_command": step.dbt_command}
            record["truncated_debug_logs"] = ""
            self.state.add_run_step(run_id, record, step.artifact_dir)
            if step.status == 10 and step.dbt_command == "dbt docs generate":
                flags["docs"] = True
            if step.status == 10 and step.dbt_command == "dbt source freshness":
                flags["sources"] = True

        try:
            ok = self.runner.run(run_id, job, overrides, on_step, self.state.run_environment(job_id))
            message = None if ok else "A step failed; see the run steps' logs."
        except Exception as exc:  # the run must end in a final status whatever happened
            log.exception("sandbox run %s failed to execute", run_id)
            ok, message = False, f"The sandbox could not execute the run: {type(exc).__name__}: {exc}"
        self.state.update_run(
            run_id,
            status=10 if ok else 20,
            finished=True,
            status_message=message,
            has_docs_generated=flags["docs"],
            has_sources_generated=flags["sources"],
            artifacts_saved=run_id in self.state.artifact_dirs,
        )
        return self.state.get_run(run_id, include_steps=True)

    # ------------------------------------------------------------------------------------------------ HTTP

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme in ("Token", "Bearer") and secrets.compare_digest(value.strip(), self.token)

    def _endpoint(self, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            if not self._authorized(request):
                return JSONResponse(error_body(401, "Invalid token."), status_code=401)
            try:
                account = int(request.path_params.get("account_id", self.state.account_id))
                self.state.check_account(account)
                return await handler(request)
            except ApiError as exc:
                return JSONResponse(error_body(exc.status, exc.message, exc.field), status_code=exc.status)

        return wrapped

    def _starlette(self) -> Starlette:
        v2, v3 = "/api/v2/accounts/{account_id:int}", "/api/v3/accounts/{account_id:int}"
        e = self._endpoint
        routes = [
            Route("/_sandbox/health", self._health, methods=["GET"]),
            Route("/_sandbox/faults", e(self._faults), methods=["GET", "POST"]),
            Route(f"{v2}/jobs/", e(self._list_jobs), methods=["GET"]),
            Route(f"{v2}/jobs/{{job_id:int}}/", e(self._job), methods=["GET", "POST"]),
            Route(f"{v2}/jobs/{{job_id:int}}/run/", e(self._trigger_run), methods=["POST"]),
            Route(f"{v2}/runs/", e(self._list_runs), methods=["GET"]),
            Route(f"{v2}/runs/{{run_id:int}}/", e(self._get_run), methods=["GET"]),
            Route(f"{v2}/runs/{{run_id:int}}/artifacts/", e(self._list_artifacts), methods=["GET"]),
            Route(f"{v2}/runs/{{run_id:int}}/artifacts/{{path:path}}", e(self._get_artifact), methods=["GET"]),
            Route(f"{v2}/notifications/", e(self._list_notifications), methods=["GET"]),
            Route(f"{v3}/webhooks/subscriptions", e(self._webhook_subscriptions), methods=["GET", "POST"]),
            Route(
                f"{v3}/projects/{{project_id:int}}/environment-variables/environment/",
                e(self._project_environment_variables),
                methods=["GET"],
            ),
            Route(
                f"{v3}/projects/{{project_id:int}}/environment-variables/job/",
                e(self._job_environment_variables),
                methods=["GET"],
            ),
            Route(f"{v3}/environments/{{environment_id:int}}/", e(self._get_environment), methods=["GET"]),
            Route(
                f"{v3}/projects/{{project_id:int}}/environments/{{environment_id:int}}/",
                e(self._get_environment),
                methods=["GET"],
            ),
        ]
        return Starlette(routes=routes)

    @staticmethod
    async def _body(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"null")
        except json.JSONDecodeError:
            raise ApiError(400, "The request body is not valid JSON.") from None

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def _faults(self, request: Request) -> Response:
        if request.method == "POST":
            body = await self._body(request)
            if not isinstance(body, dict):
                raise ApiError(400, "POST /_sandbox/faults takes an object of FaultSettings fields.")
            try:
                self.faults.configure(**body)
            except (TypeError, ValueError) as exc:
                raise ApiError(400, f"Invalid fault settings: {exc}") from None
        return JSONResponse(envelope(self.faults.as_dict()))

    async def _list_jobs(self, request: Request) -> Response:
        page, extra = self.state.list_jobs(dict(request.query_params))
        return JSONResponse(envelope(page, extra))

    async def _job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        if request.method == "POST":
            return JSONResponse(envelope(self.state.update_job(job_id, await self._body(request))))
        return JSONResponse(envelope(self.state.get_job(job_id)))

    async def _trigger_run(self, request: Request) -> Response:
        body = await self._body(request)
        if not isinstance(body, dict) or not isinstance(body.get("cause"), str) or not body["cause"]:
            raise ApiError(400, "'cause' is a required property", "cause")
        overrides = {k: v for k, v in body.items() if k.endswith("_override")}
        return JSONResponse(envelope(self.start_run(request.path_params["job_id"], body["cause"], overrides)))

    async def _list_runs(self, request: Request) -> Response:
        page, extra = self.state.list_runs(dict(request.query_params))
        return JSONResponse(envelope(page, extra))

    async def _get_run(self, request: Request) -> Response:
        related = list_param(dict(request.query_params), "include_related") or []
        return JSONResponse(envelope(self.state.get_run(request.path_params["run_id"], "run_steps" in related)))

    async def _list_artifacts(self, request: Request) -> Response:
        step = int_param(dict(request.query_params), "step")
        return JSONResponse(envelope(self.state.list_artifacts(request.path_params["run_id"], step)))

    async def _get_artifact(self, request: Request) -> Response:
        step = int_param(dict(request.query_params), "step")
        path = self.state.artifact_path(request.path_params["run_id"], request.path_params["path"], step)
        return Response(path.read_bytes(), media_type="application/json")

    async def _list_notifications(self, request: Request) -> Response:
        page, extra = self.state.list_notifications(dict(request.query_params))
        return JSONResponse(envelope(page, extra))

    async def _webhook_subscriptions(self, request: Request) -> Response:
        if request.method == "POST":
            return JSONResponse(envelope(self.webhooks.subscribe(await self._body(request))))
        listed = self.webhooks.listed()
        return JSONResponse(envelope(listed, {"pagination": {"count": len(listed), "total_count": len(listed)}}))

    async def _project_environment_variables(self, request: Request) -> Response:
        return JSONResponse(envelope(self.state.project_environment_variables(request.path_params["project_id"])))

    async def _job_environment_variables(self, request: Request) -> Response:
        job_id = int_param(dict(request.query_params), "job_definition_id")
        variables = self.state.job_environment_variables(request.path_params["project_id"], job_id)
        return JSONResponse(envelope(variables))

    async def _get_environment(self, request: Request) -> Response:
        env_id = request.path_params["environment_id"]
        return JSONResponse(envelope(self.state.get_environment(env_id, request.path_params.get("project_id"))))


def create_app(
    jobs_file: Path | None = None,
    environments_file: Path | None = None,
    *,
    token: str | None = None,
    faults: FaultSettings | None = None,
    project_dir: Path | None = None,
    warehouse_base: Path | None = None,
    artifacts_dir: Path | None = None,
    run_workers: int = 1,
    omitted_fields: str = "keep",
    raw_catalog: str | None = RAW_DB,
) -> SandboxApp:
    """Build a sandbox account seeded from a jobs list-response file (default: the bundled seed).

    A team can rehearse on a copy of its real account: save GET /api/v2/accounts/{id}/jobs/?state=all to a
    file and pass it as `jobs_file` (environments are synthesised when no `environments_file` is given).
    `omitted_fields` is "keep" or "reset" (see `SandboxApp`).
    """
    state = SandboxState.from_files(jobs_file, environments_file, omitted_fields=omitted_fields)
    return SandboxApp(state, token, faults, project_dir, warehouse_base, artifacts_dir, run_workers, raw_catalog)
