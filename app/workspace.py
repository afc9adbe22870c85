"""One tenant's workspace: its services, built once, and the migration's use cases on them.

`Workspace.open()` loads the tenant settings once; the dbt Cloud client (with the tenant's retry policy), the
cutover ledger, the run-artifact store, the parity report root and the Prefect access are built on first use and
then reused. Every entrypoint (CLI commands, the flows, the demo, the notebooks) goes through it, so that each
service is built in one place with one policy:

    with Workspace.open(tenant_file) as workspace:
        plan = workspace.plan()
        report = workspace.status()

Nothing is printed and nothing exits: the callers render the results.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from dbt2prefect.tenant import TenantSettings, load_tenant

if TYPE_CHECKING:
    from uuid import UUID

    import httpx
    from prefect.client.schemas.objects import FlowRun

    from dbt2prefect.artifact_store import ArtifactStore, RunKey
    from dbt2prefect.params import ProfilesStrategy
    from dbt2prefect.prefect_gateway import PrefectGateway
    from migration.apply import ApplyDiff
    from migration.ci_state import DbtCloudState
    from migration.dbt_cloud.client import DbtCloudClient
    from migration.dbt_cloud.models import Job
    from migration.dbt_cloud.settings import RetryPolicy
    from migration.deployment import DeploymentSpec
    from migration.doctor import DoctorReport, DoctorServices
    from migration.export import Inventory, ProgressCallback
    from migration.guard import GuardOutcome
    from migration.ledger import Ledger
    from migration.plan import MigrationPlan
    from migration.prefect_switch import PrefectSchedules
    from migration.run_job import StartedRun
    from migration.shadow_feed import RunCompleted
    from migration.shadow_poll import CursorFile
    from migration.status import StatusReport
    from migration.switch_context import SwitchContext, SwitchReport
    from parity.model import ParityReport, Verdict
    from parity.runner import CandidateStarter, ParityContext
    from parity.settings import ParitySettings
    from parity.shadow import JobReadiness, ShadowGate, ShadowPair, ShadowStore
    from parity.store import ReportRoot


@dataclass(frozen=True)
class CurrentPlan:
    """The plan of the account as it is now, with the jobs it was made from.

    Attributes:
        jobs: every job of the inventory as dbt Cloud returns it (deleted ones included), to find chained jobs.
        plan: the plan, with each cut-over job taken as the ledger recorded it before cutover.
    """

    jobs: list[Job]
    plan: MigrationPlan


@dataclass(frozen=True)
class FetchedArtifacts:
    """What `artifacts fetch` copied: a stored run of the deployment, or dbt Cloud's state before there is one."""

    run: RunKey | None = None
    dbt_cloud_state: DbtCloudState | None = None


@dataclass(frozen=True)
class ShadowResult:
    """The record of a compared pair, and whether this call wrote it (False: that dbt Cloud run was recorded
    before, by an earlier call or another process, and the record returned is that one)."""

    pair: ShadowPair
    recorded: bool


@dataclass(frozen=True)
class ShadowRunOutcome:
    """What one completed dbt Cloud run led to in the parallel-run period (see `Workspace.shadow_run`).

    Attributes:
        action: `paired` (a twin ran and this call recorded the pair), `already paired` (the run has a pair: a
            repeated event, nothing ran), `skipped` (no twin, no pair: `why` says which rule).
        pair: the run's pair, when it has one.
    """

    job_id: int
    dbt_cloud_run_id: int
    action: Literal["paired", "already paired", "skipped"]
    why: str
    pair: ShadowPair | None = None


@dataclass(frozen=True)
class EmittedFiles:
    """The files `emit` wrote and the deployment they describe."""

    spec: DeploymentSpec
    prefect_yaml: Path
    ci_workflow: Path | None
    quickstart: str | None


class Workspace:
    """A tenant's services and use cases (see the module docstring); a context manager that closes what it opened.

    Args:
        tenant: the tenant settings.
        ledger_url: the cutover ledger's folder or fsspec URL (default: the tenant's `ledger_url`).
        report_dir: the parity report root (default: the tenant's, see `parity.store.tenant_report_root`).
        token: the dbt Cloud API token (default: the tenant's `token_env`, then its Secret block).
        token_env: the environment variable holding the token (default: the tenant's `token_env`).
        dbt_cloud_host: the dbt Cloud host (default: the tenant's).
        dbt_cloud_account_id: the dbt Cloud account (default: the tenant's).
        dbt_cloud_transport: an httpx transport for the dbt Cloud client (tests inject faults with it).
        prefect: the Prefect gateway (default: `connect_prefect()`, opened on first use and closed with the
            workspace; tests pass an in-memory one).
    """

    def __init__(
        self,
        tenant: TenantSettings,
        *,
        ledger_url: str | None = None,
        report_dir: str | Path | None = None,
        token: SecretStr | str | None = None,
        token_env: str | None = None,
        dbt_cloud_host: str | None = None,
        dbt_cloud_account_id: int | None = None,
        dbt_cloud_transport: httpx.BaseTransport | None = None,
        prefect: PrefectGateway | None = None,
    ) -> None:
        self.tenant = tenant
        self._gateway = prefect
        self._opened = ExitStack()
        self._ledger_url = ledger_url or tenant.ledger_url
        self._report_dir = report_dir
        self._token = SecretStr(token) if isinstance(token, str) else token
        self._token_env = token_env or tenant.dbt_cloud.token_env
        self._host = dbt_cloud_host or tenant.dbt_cloud.host
        self._account_id = dbt_cloud_account_id if dbt_cloud_account_id is not None else tenant.dbt_cloud.account_id
        self._transport = dbt_cloud_transport

    @classmethod
    def open(
        cls,
        tenant_file: str | Path | None = None,
        *,
        ledger_url: str | None = None,
        report_dir: str | Path | None = None,
        token: SecretStr | str | None = None,
        token_env: str | None = None,
        dbt_cloud_host: str | None = None,
        dbt_cloud_account_id: int | None = None,
        dbt_cloud_transport: httpx.BaseTransport | None = None,
    ) -> Workspace:
        """The workspace of the tenant settings file (default: the repository's tenant); see the class for the rest.

        Raises:
            ConfigError: the tenant settings file is missing or invalid.
        """
        return cls(
            load_tenant(tenant_file),
            ledger_url=ledger_url,
            report_dir=report_dir,
            token=token,
            token_env=token_env,
            dbt_cloud_host=dbt_cloud_host,
            dbt_cloud_account_id=dbt_cloud_account_id,
            dbt_cloud_transport=dbt_cloud_transport,
        )

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the services that hold connections (the dbt Cloud client, the Prefect client), if they were built."""
        client = self.__dict__.pop("dbt_cloud", None)
        if client is not None:
            client.close()
        self.__dict__.pop("prefect_gateway", None)
        self.__dict__.pop("prefect", None)
        self._opened.close()

    # ------------------------------------------------------------------------------------------------ services

    def _dbt_cloud_token(self) -> tuple[SecretStr, str]:
        """The token and where it came from (never the value)."""
        from migration.dbt_cloud.auth import resolve_token

        if self._token is not None:
            return self._token, "the token given to the workspace"
        return resolve_token(self._token_env, self.tenant.blocks.dbt_cloud_token_block)

    def _new_dbt_cloud_client(
        self,
        host: str,
        token: SecretStr,
        token_source: str,
        *,
        retry: RetryPolicy,
        timeout: float | None = None,
        page_size: int | None = None,
    ) -> DbtCloudClient:
        """The one place a dbt Cloud client is built."""
        from migration.dbt_cloud.client import PAGE_LIMIT, DbtCloudClient

        return DbtCloudClient(
            host,
            self._account_id,
            token,
            token_source=token_source,
            timeout=30.0 if timeout is None else timeout,
            retry=retry,
            transport=self._transport,
            page_size=PAGE_LIMIT if page_size is None else page_size,
        )

    @cached_property
    def dbt_cloud(self) -> DbtCloudClient:
        """The client of the tenant's dbt Cloud account, retrying 429 answers as long as `rate_limit_minutes` allows.

        Raises:
            DbtCloudConfigError: no token, or the host or account setting is unusable.
        """
        from migration.dbt_cloud.settings import RetryPolicy

        token, source = self._dbt_cloud_token()
        retry = RetryPolicy.for_rate_limit_minutes(self.tenant.dbt_cloud.rate_limit_minutes)
        return self._new_dbt_cloud_client(self._host, token, source, retry=retry)

    @cached_property
    def ledger(self) -> Ledger:
        """The tenant's cutover ledger.

        Raises:
            LedgerSettingError: the ledger URL is unusable or not durable.
        """
        from migration.ledger import Ledger

        return Ledger(self._ledger_url, self.tenant.name)

    @cached_property
    def store(self) -> ArtifactStore:
        """The tenant's run-artifact store.

        Raises:
            ArtifactStoreError: the store URL is unusable.
        """
        from dbt2prefect.artifact_store import ArtifactStore

        return ArtifactStore(self.tenant.artifact_store_url)

    @cached_property
    def report_root(self) -> ReportRoot:
        """Where parity reports and their latest-verdict pointer live."""
        from parity.store import tenant_report_root

        return tenant_report_root(self.tenant, self._report_dir)

    @cached_property
    def shadow_store(self) -> ShadowStore:
        """The shadow pair records and their reports, under the parity report root."""
        from parity.shadow import ShadowStore

        return ShadowStore(self.report_root)

    @cached_property
    def prefect_gateway(self) -> PrefectGateway:
        """The one place the workspace reaches Prefect from: one client (of PREFECT_API_URL's API) for every call."""
        from dbt2prefect.prefect_gateway import connect_prefect

        if self._gateway is not None:
            return self._gateway
        return self._opened.enter_context(connect_prefect())

    @cached_property
    def prefect(self) -> PrefectSchedules:
        """The Prefect side of the tenant's deployment (its schedules), through `prefect_gateway`."""
        from migration.prefect_switch import PrefectSchedules

        return PrefectSchedules(f"{self.tenant.flow_name}/{self.tenant.deployment_name}", self.prefect_gateway)

    @cached_property
    def shadow_cursor(self) -> CursorFile:
        """The cursor of the polling of completed dbt Cloud runs, in the tenant's store.

        Raises:
            ArtifactStoreError: the store URL is unusable.
        """
        from migration.shadow_poll import CursorFile

        return CursorFile(self.tenant.artifact_store_url, self.tenant.name, self.tenant.compare_and_swap)

    def webhook_secret(self) -> SecretStr:
        """The dbt Cloud webhook's secret, from the Prefect Secret block the tenant names.

        Raises:
            DbtCloudConfigError: no block is named, or it cannot be read.
        """
        from migration.dbt_cloud.auth import secret_from_block
        from migration.dbt_cloud.errors import DbtCloudConfigError

        block = self.tenant.blocks.dbt_cloud_webhook_secret_block
        if not block:
            raise DbtCloudConfigError(
                "no dbt Cloud webhook secret: set [tenant.blocks] dbt_cloud_webhook_secret_block to the Prefect "
                "Secret block that holds the secret dbt Cloud showed when the webhook was created"
            )
        return secret_from_block(block, "dbt Cloud webhook secret")

    def switch_context(self, by: str | None = None) -> SwitchContext:
        """What cutover and rollback act on: the dbt Cloud client, the Prefect schedules, the ledger, and who."""
        from migration.switch_context import SwitchContext

        return SwitchContext(self.tenant.name, self.dbt_cloud, self.prefect, self.ledger, by or getpass.getuser())

    # ------------------------------------------------------------------------------------------------ use cases

    def inventory(
        self,
        *,
        project_id: int | None = None,
        include_deleted: bool = True,
        max_workers: int = 8,
        progress: ProgressCallback | None = None,
    ) -> Inventory:
        """Export every job of the account (or of `project_id`, default the tenant's project) from dbt Cloud."""
        from migration.export import export_inventory

        return export_inventory(
            self.dbt_cloud,
            project_id=project_id if project_id is not None else self.tenant.dbt_cloud.project_id,
            include_deleted=include_deleted,
            max_workers=max_workers,
            progress=progress,
        )

    def current_plan(self, from_file: Path | None = None, inventory: Inventory | None = None) -> CurrentPlan:
        """The plan of an inventory (`inventory`, else the file `from_file`, else dbt Cloud read now), read through
        the ledger: a cut-over job is planned as the ledger recorded it, so its schedule stays in the plan.

        Raises:
            InventoryError: the file is unreadable or belongs to another account.
        """
        from migration.cutover import jobs_as_planned
        from migration.export import check_account, load_inventory
        from migration.translate import plan_inventory

        if inventory is None and from_file is not None:
            inventory = load_inventory(from_file)
            check_account(inventory, self.tenant.dbt_cloud.account_id, from_file, self.tenant.name)
        if inventory is None:
            inventory = self.inventory(include_deleted=True)
        jobs = inventory.job_models()
        return CurrentPlan(jobs, plan_inventory(inventory, self.tenant, jobs_as_planned(jobs, self.ledger)))

    def plan(self, from_file: Path | None = None, inventory: Inventory | None = None) -> MigrationPlan:
        """`current_plan(...).plan`: the migration plan, read through the ledger."""
        return self.current_plan(from_file, inventory).plan

    def deployment(self, plan: MigrationPlan, *, activate: bool = False) -> DeploymentSpec:
        """The plan's deployment with this checkout's pins, each schedule active as the ledger says (or all with
        `activate`)."""
        from migration.deployment import tenant_deployment

        return tenant_deployment(plan, self.tenant, self.ledger, activate=activate)

    def apply(
        self,
        spec: DeploymentSpec,
        *,
        prune: bool = False,
        create_pool: bool = False,
        dry_run: bool = False,
        automations_only: bool = False,
        shown: ApplyDiff | None = None,
    ) -> ApplyDiff:
        """Create or update the deployment (or only its notification automations) through the Prefect API.

        With `shown` (the `dry_run` diff a person saw), write exactly that diff or nothing: refused with an
        ApplyError naming what changed when the Prefect API no longer is as that diff read it.
        """
        from migration.apply import apply_deployment, apply_notifications

        prefect = self.prefect_gateway
        if automations_only:
            return apply_notifications(spec, prune=prune, dry_run=dry_run, prefect=prefect, shown=shown)
        return apply_deployment(
            spec, prune=prune, create_pool=create_pool, dry_run=dry_run, prefect=prefect, shown=shown
        )

    def emit(
        self,
        plan: MigrationPlan,
        spec: DeploymentSpec,
        *,
        output: Path,
        ci_workflow: Path,
        source: str,
        tenant_file: Path | None,
        example: bool = False,
    ) -> EmittedFiles:
        """Write the deployment as prefect.yaml at `output` and, when the plan has CI or merge jobs, their GitHub
        Actions workflow at `ci_workflow`; `source` is the command that regenerates them (named in their headers).

        Raises:
            EmitError: a file is not one the toolkit may write.
        """
        from dbt2prefect.tenant import settings_path
        from migration.ci_workflow import render_workflow
        from migration.deployment import runtime_versions
        from migration.emit import quickstart_command, render_prefect_yaml, write_prefect_yaml

        versions = runtime_versions(self.tenant)
        text = render_prefect_yaml(spec, versions["prefect"], source=source, example=example)
        path = write_prefect_yaml(text, output)
        workflow = None
        if plan.ci_jobs:
            rendered = render_workflow(
                plan, self.tenant, source=source, tenant_file=tenant_file or settings_path(self.tenant.name)
            )
            workflow = write_prefect_yaml(rendered, ci_workflow, option="--ci-workflow")
        quickstart = quickstart_command(spec, versions, python=self.tenant.image_python)
        return EmittedFiles(spec=spec, prefect_yaml=path, ci_workflow=workflow, quickstart=quickstart)

    def parity_report(
        self,
        job_ids: Sequence[int] | None,
        candidate_runs: dict[int, str],
        profiles_strategy: ProfilesStrategy,
        *,
        start_candidate: CandidateStarter | None = None,
        calibrate: bool = False,
    ) -> ParityReport:
        """Parity of the tenant's jobs: baselines from dbt Cloud, candidates given or started by `start_candidate`
        (the flow starts `run_dbt_wg` subflows).

        With `calibrate`, each job's run on the parity target is compared with a new run on the calibration target
        (the same code, an A/A pair) instead of its baseline: the report names the build noise and its settings
        lines.

        Raises:
            ConfigError: a job cannot be compared, or the calibration target is not one of the tenant's.
            ParitySettingsError: the candidate target is a production target.
        """
        from app.parity_jobs import job_specs
        from dbt2prefect.errors import ConfigError
        from parity.runner import calibrate_jobs, compare_jobs

        tenant = self.tenant
        settings, settings_file = self._parity_settings()
        if calibrate and settings.calibration_target not in tenant.targets:
            raise ConfigError(
                f"[parity] calibration_target {settings.calibration_target!r} is not one of the tenant's targets "
                f"({', '.join(tenant.targets)}); add it to [tenant] targets and to the dbt profile (a database or "
                "schema of its own), or set calibration_target to such a target"
            )
        specs = job_specs(self.dbt_cloud, tenant, self.ledger, job_ids, candidate_runs)
        context = self._parity_context(settings, settings_file, profiles_strategy, start_candidate)
        return calibrate_jobs(specs, context) if calibrate else compare_jobs(specs, context)

    def _parity_settings(self) -> tuple[ParitySettings, Path | None]:
        """The tenant's parity settings and their file; a production candidate target is refused here, before
        dbt Cloud is asked anything (the jobs' own targets are checked once they are known)."""
        from parity.settings import (
            load_parity_settings,
            parity_settings_path,
            production_targets,
            refuse_production_candidate,
        )

        tenant = self.tenant
        settings_file = parity_settings_path(tenant.settings_file) if tenant.settings_file else None
        settings = load_parity_settings(settings_file)
        refuse_production_candidate(settings, production_targets(tenant.dbt_cloud_environments), settings_file)
        return settings, settings_file

    def _parity_context(
        self,
        settings: ParitySettings,
        settings_file: Path | None,
        profiles_strategy: ProfilesStrategy,
        start_candidate: CandidateStarter | None = None,
    ) -> ParityContext:
        """What a comparison needs: the parity settings, the store, the dbt Cloud client, the targets' profiles."""
        from parity.connections import profile_outputs
        from parity.runner import ParityContext

        tenant = self.tenant
        return ParityContext(
            tenant=tenant.name,
            deployment=tenant.deployment_name,
            store=self.store,
            baselines=self.dbt_cloud,
            settings=settings,
            project_dir=tenant.project_dir,
            profile_outputs=profile_outputs(tenant, profiles_strategy),
            start_candidate=start_candidate,
            environments=tenant.dbt_cloud_environments,
            settings_source=settings_file,
        )

    def shadow_pair(
        self,
        job_id: int,
        dbt_cloud_run_id: int,
        prefect_run_id: str,
        profiles_strategy: ProfilesStrategy = "blocks",
    ) -> ShadowResult:
        """Compare one dbt Cloud run of a job (its own artifacts, not the job's latest) with its Prefect twin, a
        finished `run_dbt_wg` run of the job's parameters on the parity target, and record the pair once.

        A pair already recorded for that dbt Cloud run is returned as it is, without comparing again. A twin that
        ended without artifacts to compare is recorded as a FAIL pair (`candidate_unusable`).

        Raises:
            ParameterError: a bad id, a flow run the Prefect API does not know, or one that has not ended yet
                (nothing is recorded).
            BaselineError: the dbt Cloud run is not a run of the job, or has no building step to compare with
                (nothing is recorded).
            ReportStoreError: the record or report could not be read or written.
        """
        from uuid import UUID

        from app.parity_jobs import job_specs
        from dbt2prefect.errors import ParameterError
        from parity.errors import CandidateError
        from parity.runner import compare_jobs
        from parity.shadow import check_flow_run_id, compared_pair, unusable_twin_pair

        if job_id <= 0 or dbt_cloud_run_id <= 0:
            raise ParameterError(f"job {job_id}, dbt Cloud run {dbt_cloud_run_id}: pass positive dbt Cloud ids")
        try:
            flow_run_id = UUID(check_flow_run_id(prefect_run_id))
        except ValueError:
            raise ParameterError(f"Prefect flow run id {prefect_run_id!r} is not a UUID; pass the twin's id") from None
        parity_settings = self._parity_settings()  # bad settings: refused before any service is asked
        shadow = self.shadow_store
        existing = shadow.get(job_id, dbt_cloud_run_id)
        if existing is not None:
            return ShadowResult(existing, recorded=False)
        twin = self.prefect_gateway.read_flow_run(flow_run_id)
        if twin is None:
            raise ParameterError(
                f"Prefect has no flow run {prefect_run_id} (API {self.prefect_gateway.api_url}); pass the id of the "
                f"twin of dbt Cloud run {dbt_cloud_run_id}"
            )
        if twin.state is None or not twin.state.is_final():
            state = "scheduled" if twin.state is None else twin.state.name
            raise ParameterError(
                f"Prefect flow run {prefect_run_id} has not ended (state {state}); compare it once it has"
            )
        run = self.dbt_cloud.get_run(dbt_cloud_run_id, include_related=())
        context = self._parity_context(*parity_settings, profiles_strategy)
        [spec] = job_specs(self.dbt_cloud, self.tenant, self.ledger, [job_id], {job_id: prefect_run_id})
        spec = spec.model_copy(update={"baseline_run_id": dbt_cloud_run_id})
        cloud_times = {"dbt_cloud_started_at": run.started_at, "dbt_cloud_finished_at": run.finished_at}
        now = datetime.now(UTC)
        try:
            report = compare_jobs([spec], context)
        except CandidateError as exc:
            pair = unusable_twin_pair(
                self.tenant.name,
                job_id,
                spec.name,
                dbt_cloud_run_id=dbt_cloud_run_id,
                prefect_run_id=prefect_run_id,
                problem=str(exc),
                compared_at=now,
                **cloud_times,
            )
        else:
            location = shadow.write_report(report, job_id, dbt_cloud_run_id, prefect_run_id)
            pair = compared_pair(
                self.tenant.name,
                report.job(job_id),
                dbt_cloud_run_id=dbt_cloud_run_id,
                report=location,
                compared_at=now,
                **cloud_times,
            )
        if shadow.record(pair):
            return ShadowResult(pair, recorded=True)
        return ShadowResult(shadow.get(job_id, dbt_cloud_run_id) or pair, recorded=False)

    def shadow_run(
        self,
        job_id: int,
        dbt_cloud_run_id: int,
        *,
        start_twin: CandidateStarter,
        status: str = "success",
        event: Mapping[str, Any] | None = None,
        profiles_strategy: ProfilesStrategy = "blocks",
    ) -> ShadowRunOutcome:
        """The parallel-run period for one completed dbt Cloud run of a job: its Prefect twin, then its pair.

        Each rule, in this order, may end it without a twin (`skipped`, with the reason):
        shadowing is off (`[tenant.shadow] enabled`); the job is not in shadow (not migrated, or not in
        `[tenant.shadow] jobs`); the run has a pair already (`already paired`: a repeated event runs nothing);
        the dbt Cloud run did not succeed; the run is sampled out (`[tenant.shadow] sample`).

        A failed or cancelled dbt Cloud run gets no twin and no pair, and leaves the streak as it was: it built
        part of the job or nothing, so a twin would be compared with a partial baseline, and the verdict would be
        about that day's dbt Cloud run, not about the migration. `status` is the event's word for it; a run the
        event calls successful is read from dbt Cloud, whose status and job decide.

        Otherwise `start_twin` runs the twin, the job's planned parameters on the parity target (as parity's
        candidate, plus `shadow_of_run`: named `shadow job-<id> ...`, no job tag), and `shadow_pair` compares and
        records exactly that pair.

        Args:
            event: the event's payload; a webhook event (`source` `webhook`) is acted on only once its signature
                is verified, and must name the same job and run.

        Raises:
            ParameterError: a bad id, a run of another job, a run that has not completed, an event that names
                another run than its signed body.
            WebhookRefusedError: a webhook event that is not signed with the tenant's webhook secret.
            ConfigError: the job has no translated parameters.
            BaselineError, ReportStoreError: see `shadow_pair`.
        """
        from app.parity_jobs import job_specs
        from dbt2prefect.errors import ParameterError
        from migration.shadow_feed import COMPLETED_STATUSES

        if job_id <= 0 or dbt_cloud_run_id <= 0:
            raise ParameterError(f"job {job_id}, dbt Cloud run {dbt_cloud_run_id}: pass positive dbt Cloud ids")

        def outcome(
            action: Literal["paired", "already paired", "skipped"], why: str, pair: ShadowPair | None = None
        ) -> ShadowRunOutcome:
            return ShadowRunOutcome(job_id, dbt_cloud_run_id, action, why, pair)

        if event is not None and event.get("source") == "webhook":
            signed = self.verify_webhook_event(event)
            if (signed.job_id, signed.run_id) != (job_id, dbt_cloud_run_id):
                raise ParameterError(
                    f"the event's signed body reports run {signed.run_id} of job {signed.job_id}, not run "
                    f"{dbt_cloud_run_id} of job {job_id}; template the parameters from the same event's payload"
                )
            status = signed.status
        settings = self.tenant.shadow
        if not settings.enabled:
            return outcome("skipped", "shadowing is off ([tenant.shadow] enabled = false)")
        if not settings.shadows(job_id) or job_id not in self.shadowed_jobs():
            return outcome("skipped", f"job {job_id} is not in shadow (not migrated, or not in [tenant.shadow] jobs)")
        existing = self.shadow_store.get(job_id, dbt_cloud_run_id)
        if existing is not None:
            return outcome("already paired", "the run was compared before; nothing ran", existing)
        if status == "success":
            run = self.dbt_cloud.get_run(dbt_cloud_run_id, include_related=())
            if run.job_definition_id != job_id:
                raise ParameterError(
                    f"dbt Cloud run {dbt_cloud_run_id} is a run of job {run.job_definition_id}, not of job {job_id}"
                )
            found = COMPLETED_STATUSES.get(run.status)
            if found is None:
                raise ParameterError(
                    f"dbt Cloud run {dbt_cloud_run_id} has not completed (status {int(run.status)}); its twin runs "
                    "once it has"
                )
            status = found
        if status != "success":
            return outcome(
                "skipped", f"the dbt Cloud run ended {status}: no twin and no pair, the streak stays as it was"
            )
        seen = self.shadow_store.hear(job_id, dbt_cloud_run_id)
        if not settings.takes(job_id, seen):
            return outcome(
                "skipped", f"sampled out: successful run {seen} of the job, and every {settings.sample}th is shadowed"
            )
        candidate_target = self._parity_settings()[0].candidate_target
        [spec] = job_specs(self.dbt_cloud, self.tenant, self.ledger, [job_id])
        parameters = {**spec.candidate_parameters(candidate_target), "shadow_of_run": dbt_cloud_run_id}
        twin = start_twin(spec, parameters)
        result = self.shadow_pair(job_id, dbt_cloud_run_id, twin, profiles_strategy)
        if result.recorded:
            return outcome("paired", f"twin {twin}: {result.pair.verdict.value}", result.pair)
        return outcome("already paired", "another process recorded the run's pair meanwhile", result.pair)

    def readiness(self, job_ids: Sequence[int] | None = None) -> dict[int, JobReadiness]:
        """Each job's readiness from its shadow pairs (default: every job with pairs or named in `[tenant.shadow]`
        jobs)."""
        from parity.shadow import read_readiness

        return read_readiness(self.shadow_store, self.tenant.shadow, job_ids)

    def shadow_gate(self, job_ids: Sequence[int] | None = None) -> ShadowGate:
        """Cutover's gate for the jobs in the parallel-run period (see `parity.shadow.ShadowGate`)."""
        from parity.shadow import ShadowGate

        return ShadowGate(self.tenant.shadow, self.readiness(job_ids))

    def write_parity_report(self, report: ParityReport, *, calibration: bool = False) -> str:
        """Write the report under the report root (a calibration under `calibration/`, where it can never become a
        job's parity verdict); returns its folder."""
        from parity.store import ReportRoot, write_report

        root = self.report_root
        if calibration:
            root = ReportRoot(f"{root.url}/calibration", root.swap)
        return write_report(report, root)

    def verdicts(self) -> dict[int, tuple[Verdict, datetime]]:
        """Each job's latest parity verdict and its time, from the report root."""
        from parity.store import load_latest_verdicts

        return dict(load_latest_verdicts(self.report_root))

    def cutover(
        self,
        job_ids: Sequence[int],
        *,
        force: bool = False,
        reason: str | None = None,
        by: str | None = None,
        dry_run: bool = False,
    ) -> SwitchReport:
        """Cut the jobs over (every job with a schedule in the plan when `job_ids` is empty), gated by parity.

        Raises:
            CutoverRequestError: a bad job id, or `force` without a reason.
            CutoverRefusedError: a job has no PASS verdict (or, in the parallel-run period, not the streak of PASS
                pairs `[tenant.shadow]` asks for) or its schedule is not applied as planned.
        """
        from migration.cutover import CutoverRequest
        from migration.cutover import cutover as run_cutover

        request = CutoverRequest(job_ids=tuple(job_ids), force=force, reason=reason)  # bad input: before any call
        current = self.current_plan()
        shadowed = [s.job_id for s in current.plan.schedules] if not job_ids else list(job_ids)
        return run_cutover(
            current.plan,
            current.jobs,
            self.verdicts(),
            self.switch_context(by),
            request,
            dry_run=dry_run,
            shadow=self.shadow_gate(shadowed),
        )

    def rollback(self, job_ids: Sequence[int], *, by: str | None = None, dry_run: bool = False) -> SwitchReport:
        """Roll the jobs back from the ledger (every job in the ledger when `job_ids` is empty)."""
        from migration.rollback import rollback as run_rollback

        return run_rollback(tuple(job_ids), self.switch_context(by), dry_run=dry_run)

    def guard(self, flow_run_id: str) -> GuardOutcome:
        """The guarded window: about a finished run of the deployment, do what `[tenant.shadow]` says (nothing, notify
        the job's destinations, or also roll the job back), once per run; see `migration.guard`.

        Raises:
            ParameterError: `flow_run_id` is not the id of a flow run on the Prefect API.
        """
        from migration.guard import GUARD_BY, guard_failed_run

        return guard_failed_run(flow_run_id, self.switch_context(GUARD_BY), self.tenant.shadow)

    def status(self, *, automations: bool = True) -> StatusReport:
        """Every job's place: dbt Cloud and Prefect schedules and last runs, parity verdict, shadow readiness (jobs
        with pairs, and shadowed jobs when `[tenant.shadow]` requires pairs), ledger state and, with `automations`,
        its trigger and notification automations on Prefect."""
        from migration.prefect_switch import PrefectTriggers
        from migration.status import collect_status

        plan = self.current_plan().plan
        seen = PrefectTriggers(self.prefect.deployment, self.prefect_gateway).read_all() if automations else None
        shadow = self.tenant.shadow
        required = [s.job_id for s in plan.schedules if shadow.required and shadow.shadows(s.job_id)]
        readiness = self.readiness(sorted(set(self.shadow_store.job_ids()) | set(required)))
        return collect_status(
            plan, self.dbt_cloud, self.prefect, self.ledger, self.verdicts(), seen, readiness=readiness
        )

    def run_job(self, job: str, *, target: str | None = None, from_file: Path | None = None) -> StartedRun:
        """Start a deployment run of one job now, with its parameters from the current plan (of `from_file`, else
        of dbt Cloud read now): `job` is its id or (part of) its name, matching one job; `target` runs it on that
        tenant target. See `migration.run_job`.

        Raises:
            RunJobError: no job or several match, the job has no Prefect run, the target is unknown, or the
                deployment does not exist.
        """
        from migration.run_job import find_job, job_run_parameters, start_job_run

        plan = self.current_plan(from_file).plan
        found = find_job(plan, job)
        parameters = job_run_parameters(plan, found, target=target, targets=self.tenant.targets)
        return start_job_run(self.prefect_gateway, self.prefect.deployment, found, parameters)

    def wait_for_run(self, flow_run_id: UUID) -> FlowRun:
        """The flow run once its state is final (read every 2 seconds)."""
        from migration.run_job import wait_for_run

        return wait_for_run(self.prefect_gateway, flow_run_id)

    def shadowed_jobs(self) -> list[int]:
        """The jobs whose completed dbt Cloud runs are reported: every job the plan migrates to a Prefect run
        (scheduled, chained or on demand)."""
        from migration.shadow_poll import SHADOWED_STATUSES

        return [job.job_id for job in self.current_plan().plan.jobs if job.status in SHADOWED_STATUSES]

    def poll_dbt_cloud_runs(
        self,
        job_ids: Sequence[int] | None = None,
        *,
        start: datetime | None = None,
        overlap: timedelta | None = None,
    ) -> list[RunCompleted]:
        """Report the completed dbt Cloud runs of `job_ids` (default `shadowed_jobs()`) since the polling cursor,
        one `RUN_COMPLETED_EVENT` each, then move the cursor (see `migration.shadow_poll`).

        Raises:
            ShadowCursorError: the cursor is unreadable, or another poller moved it meanwhile.
        """
        from migration.shadow_poll import DEFAULT_OVERLAP, poll_completed_runs

        jobs = list(job_ids) if job_ids is not None else self.shadowed_jobs()
        return poll_completed_runs(
            self.dbt_cloud,
            jobs,
            self.shadow_cursor,
            self.prefect_gateway,
            start=start,
            overlap=overlap if overlap is not None else DEFAULT_OVERLAP,
        )

    def verify_webhook_event(self, payload: Mapping[str, Any]) -> RunCompleted:
        """The run a webhook event reports, checked against the tenant's webhook secret.

        Raises:
            WebhookRefusedError: the event is not signed with the secret, or its body is not a completed run.
            DbtCloudConfigError: the secret cannot be read.
        """
        from migration.shadow_feed import verify_webhook_event

        return verify_webhook_event(payload, self.webhook_secret())

    def doctor(self) -> DoctorReport:
        """Every readiness check of the tenant: dbt Cloud, Prefect, profile and notification blocks, the stores."""
        from migration.doctor import diagnose

        return diagnose(self.tenant, self.doctor_services())

    def doctor_services(self) -> DoctorServices:
        """The services the doctor checks, each opened only when its check runs."""
        from migration.doctor import DoctorServices

        def dbt_cloud(
            host: str, token: SecretStr, token_source: str, *, retry: RetryPolicy, timeout: float, page_size: int
        ) -> DbtCloudClient:
            return self._new_dbt_cloud_client(
                host, token, token_source, retry=retry, timeout=timeout, page_size=page_size
            )

        def store() -> object:
            return self.store

        def ledger() -> object:
            return self.ledger

        def prefect() -> PrefectGateway:
            return self.prefect_gateway

        return DoctorServices(
            dbt_cloud=dbt_cloud, token=self._dbt_cloud_token, store=store, ledger=ledger, prefect=prefect
        )

    def fetch_artifacts(self, target: str, destination: Path) -> FetchedArtifacts:
        """Copy the artifacts of the latest successful run on `target` into `destination`; before any run of the
        target is stored, dbt Cloud's latest successful manifest of an environment mapped to the target.

        Raises:
            ParameterError: `target` is not one of the tenant's targets.
            CiStateError: nothing stored yet and no environment mapped to the target.
        """
        from dbt2prefect.errors import ParameterError
        from migration.ci_state import fetch_dbt_cloud_state, target_environments

        tenant = self.tenant
        if target not in tenant.targets:
            raise ParameterError(f"--target {target!r} is not one of {', '.join(tenant.targets)}")
        if self.store.latest(tenant.name, tenant.deployment_name, target) is None:
            environments = target_environments(tenant, target)
            return FetchedArtifacts(dbt_cloud_state=fetch_dbt_cloud_state(self.dbt_cloud, environments, destination))
        key = self.store.download_latest(tenant.name, tenant.deployment_name, target, destination)
        return FetchedArtifacts(run=key)
